import {spawn} from 'node:child_process'
import {openSync, closeSync} from 'node:fs'
import {mkdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {iotctlHome} from '../config/home.js'
import {isProcessAlive, readStackRecord, removeStackRecord, type StackRecord} from '../config/stack-record.js'
import {notFound, timedOut, unavailable} from '../core/errors.js'
import {maskUrl} from '../core/url.js'
import {stopOrphanServer} from '../db/embedded.js'
import {createPool, connectClient} from '../db/pool.js'
import {readHeartbeat, type Heartbeat} from './dev-monitor.js'
import {devPaths} from './paths.js'

/** One service of the stack: its process, its ports, and whether it answers. */
export interface ServiceStatus {
  pid: number | null
  ports: Record<string, number>
  healthy: boolean
  /** Why it is not healthy. */
  error?: string
}

export interface ListenerStatus {
  port: number
  url: string
  healthy: boolean
  error?: string
}

export interface DevStatus {
  running: boolean
  pid?: number
  startedAt?: string
  dataDir: string
  database?: {url: string; reachable: boolean; version?: string; error?: string}
  broker?: {mqtt_url: string; service_url: string; ca_dir: string}
  services: {
    /** Healthy when `SELECT 1` answers through the recorded URL. */
    postgres: ServiceStatus & {url: string; version?: string}
    /** Healthy when both listeners complete a TLS handshake with a certificate of the stack's CA. */
    broker: ServiceStatus & {listeners: {device?: ListenerStatus; service?: ListenerStatus}; connections: number | null}
    /** Runs in the stack process: healthy while that process lives and its heartbeat is fresh. */
    ingest: ServiceStatus & {heartbeat_age_ms: number | null; stats: Heartbeat['ingest'] | null}
    /** The firmware artifact server (HTTPS; the rollout controller runs beside it): healthy when its TLS handshake succeeds. */
    artifacts: ServiceStatus & {url: string | null}
  }
}

/** The stack process rewrites its heartbeat every second; older than this, the ingest counts as stalled. */
export const HEARTBEAT_STALE_MS = 10_000
const PROBE_TIMEOUT_MS = 3000

/** True in the background process that `dev up --detach` started (set by startDetached). */
export function isDetachedChild(): boolean {
  return process.env.IOTCTL_DETACHED === '1'
}

/** The running stack's record, or undefined (a record left by a dead process is removed). */
export async function runningStack(home = iotctlHome()): Promise<StackRecord | undefined> {
  const record = await readStackRecord(home)
  if (!record) return undefined
  if (isProcessAlive(record.pid)) return record
  await removeStackRecord(home)
  return undefined
}

/** Each service of the running stack, probed in parallel; exit 3 (E_STACK_NOT_RUNNING) when none runs. */
export async function devStatus(home = iotctlHome()): Promise<DevStatus> {
  const paths = devPaths(home)
  const record = await runningStack(home)
  if (!record) {
    throw notFound('E_STACK_NOT_RUNNING', `no dev stack is running for ${home}`, {
      hint: 'start it with `iotctl dev up --detach`',
      data: {running: false, dataDir: paths.root},
    })
  }
  const heartbeat = await readHeartbeat(paths.heartbeat)
  const current = heartbeat?.pid === record.pid ? heartbeat : undefined // not one left by an earlier stack
  const [postgres, broker, artifacts] = await Promise.all([postgresStatus(record, paths.pgData), brokerStatus(record), artifactStatus(record)])
  if (record.broker) broker.connections = current?.connections ?? null
  const ingest = ingestStatus(record, current)
  return {running: true, pid: record.pid, startedAt: record.startedAt, dataDir: paths.root,
    database: {url: postgres.url, reachable: postgres.healthy, ...(postgres.version ? {version: postgres.version} : {}), ...(postgres.error ? {error: postgres.error} : {})},
    ...(record.broker ? {broker: {mqtt_url: mqttsUrl(record.broker.devicePort), service_url: mqttsUrl(record.broker.servicePort), ca_dir: record.broker.caDir}} : {}),
    services: {postgres, broker, ingest, artifacts}}
}

async function artifactStatus(record: StackRecord): Promise<DevStatus['services']['artifacts']> {
  if (!record.artifacts || !record.broker) return {pid: null, ports: {}, healthy: false, error: 'the stack recorded no artifact server', url: null}
  const ca = await readFile(join(record.broker.caDir, 'root.crt'), 'utf8').catch(() => undefined)
  const probe = await probeListener(record.artifacts.port, ca)
  return {pid: record.pid, ports: {https: record.artifacts.port}, healthy: probe.healthy, ...(probe.error ? {error: probe.error} : {}), url: record.artifacts.baseUrl}
}

const mqttsUrl = (port: number) => `mqtts://127.0.0.1:${port}`
const messageOf = (error: unknown) => (error as Error)?.message || String(error)

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${PROBE_TIMEOUT_MS / 1000}s`)), PROBE_TIMEOUT_MS)
  })
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
}

async function postmasterPid(pgData: string): Promise<number | null> {
  const pid = Number((await readFile(join(pgData, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0])
  return Number.isInteger(pid) && pid > 0 && isProcessAlive(pid) ? pid : null
}

async function postgresStatus(record: StackRecord, pgData: string): Promise<DevStatus['services']['postgres']> {
  const status: DevStatus['services']['postgres'] = {pid: await postmasterPid(pgData), ports: {postgres: record.postgres.port},
    healthy: false, url: maskUrl(record.databaseUrl)}
  const pool = await createPool(record.databaseUrl, {max: 1, connectTimeoutMs: PROBE_TIMEOUT_MS})
  try {
    const row = await withTimeout((async () => {
      const client = await connectClient(pool, record.databaseUrl)
      try {
        return (await client.query<{ok: number; version: string}>("SELECT 1 AS ok, current_setting('server_version') AS version")).rows[0]
      } finally {
        client.release()
      }
    })(), 'PostgreSQL')
    status.healthy = row?.ok === 1
    if (row?.version) status.version = row.version
  } catch (error) {
    status.error = messageOf(error)
  } finally {
    await pool.end().catch(() => undefined)
  }
  return status
}

/**
 * A TLS 1.3 handshake that verifies the listener's certificate against the stack's root CA (the
 * name is not checked: a CA made with `ca init --san` may not name localhost). No client
 * certificate is sent, so the broker logs the probe as a handshake that was hung up.
 */
async function probeListener(port: number, ca: string | undefined): Promise<ListenerStatus> {
  const tls = await import('node:tls')
  const result = await new Promise<{healthy: boolean; error?: string}>((resolve) => {
    const socket = tls.connect({host: '127.0.0.1', port, servername: 'localhost', minVersion: 'TLSv1.3', ca,
      rejectUnauthorized: ca !== undefined, checkServerIdentity: () => undefined})
    const timer = setTimeout(() => done({healthy: false, error: `no TLS handshake within ${PROBE_TIMEOUT_MS / 1000}s`}), PROBE_TIMEOUT_MS)
    const done = (outcome: {healthy: boolean; error?: string}) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(outcome)
    }
    socket.once('secureConnect', () => done({healthy: true}))
    socket.once('error', (error) => done({healthy: false, error: error.message}))
  })
  return {port, url: mqttsUrl(port), ...result}
}

async function brokerStatus(record: StackRecord): Promise<DevStatus['services']['broker']> {
  if (!record.broker) {
    return {pid: null, ports: {}, healthy: false, error: 'the stack recorded no broker', listeners: {}, connections: null}
  }
  const ca = await readFile(join(record.broker.caDir, 'root.crt'), 'utf8').catch(() => undefined)
  const [device, service] = await Promise.all([probeListener(record.broker.devicePort, ca), probeListener(record.broker.servicePort, ca)])
  const failed = [['device', device], ['service', service]].filter(([, l]) => !(l as ListenerStatus).healthy) as Array<[string, ListenerStatus]>
  return {pid: record.pid, ports: {device: device.port, service: service.port}, healthy: failed.length === 0,
    ...(failed.length > 0 ? {error: failed.map(([name, l]) => `${name} listener :${l.port}: ${l.error}`).join('; ')} : {}),
    listeners: {device, service}, connections: null}
}

function ingestStatus(record: StackRecord, current: Heartbeat | undefined): DevStatus['services']['ingest'] {
  const alive = isProcessAlive(record.pid)
  const age = current ? Math.max(0, Date.now() - Date.parse(current.at)) : null
  const fresh = age !== null && age <= HEARTBEAT_STALE_MS
  const error = !alive ? `the stack process ${record.pid} is gone`
    : age === null ? 'the stack has written no heartbeat'
      : !fresh ? `the last heartbeat is ${Math.round(age / 1000)}s old (the stack process may be stalled)` : undefined
  return {pid: record.pid, ports: {}, healthy: alive && fresh, ...(error ? {error} : {}), heartbeat_age_ms: age, stats: current?.ingest ?? null}
}

/** One table row per service, for people: `dev status`. */
export function serviceRows(status: DevStatus): Array<{service: string; pid: number | null; ports: string; health: string; detail: string}> {
  const {postgres, broker, ingest, artifacts} = status.services
  const ports = (s: ServiceStatus) => Object.entries(s.ports).map(([name, port]) => (Object.keys(s.ports).length === 1 ? String(port) : `${name}=${port}`)).join(' ') || '-'
  const health = (s: ServiceStatus) => (s.healthy ? 'healthy' : 'unhealthy')
  const detail = (s: ServiceStatus, text: string) => (s.error ? s.error : text)
  const stats = ingest.stats
  return [
    {service: 'postgres', pid: postgres.pid, ports: ports(postgres), health: health(postgres), detail: detail(postgres, `PostgreSQL ${postgres.version ?? '?'} ${postgres.url}`)},
    {service: 'broker', pid: broker.pid, ports: ports(broker), health: health(broker),
      detail: detail(broker, `${broker.connections ?? '?'} connections, ${broker.listeners.device?.url ?? '?'} (devices)`)},
    {service: 'ingest', pid: ingest.pid, ports: ports(ingest), health: health(ingest),
      detail: detail(ingest, stats ? `${stats.messages} messages, ${stats.pending_points} points pending, ${stats.rejected} rejected, ${stats.failures} write failures` : '')},
    {service: 'artifacts', pid: artifacts.pid, ports: ports(artifacts), health: health(artifacts), detail: detail(artifacts, `${artifacts.url} (firmware downloads; rollout controller beside it)`)},
  ]
}

/**
 * Start `iotctl dev up` as a detached background process and wait until it is ready.
 * Idempotent, like `docker compose up -d`: a stack that already runs is returned as it is.
 */
export async function startDetached(argv: string[], options: {home?: string; timeoutMs?: number; env?: Record<string, string>} = {}): Promise<StackRecord & {alreadyRunning: boolean}> {
  const home = options.home ?? iotctlHome()
  const existing = await runningStack(home)
  if (existing) return {...existing, alreadyRunning: true}
  const paths = devPaths(home)
  await mkdir(paths.logs, {recursive: true, mode: 0o700})
  const out = openSync(paths.log('stack'), 'a')
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'dev', 'up', ...argv], {
    detached: true,
    stdio: ['ignore', out, out],
    // Secrets (the InfluxDB token) travel in the environment, never on the command line (`ps`).
    env: {...process.env, ...options.env, IOTCTL_HOME: home, IOTCTL_DETACHED: '1'},
  })
  closeSync(out)
  let exited: number | null | undefined
  child.once('exit', (code) => (exited = code))
  child.unref()
  const deadline = Date.now() + (options.timeoutMs ?? 120_000)
  while (Date.now() < deadline) {
    const record = await readStackRecord(home)
    if (record && record.pid === child.pid) return {...record, alreadyRunning: false}
    if (exited !== undefined) {
      const tail = (await readFile(paths.log('stack'), 'utf8').catch(() => '')).trim().split('\n').slice(-4).join('\n')
      throw unavailable('E_DEV_START', `the dev stack exited during start-up (code ${exited}):\n${tail}`, {
        hint: `read the whole log with \`iotctl dev logs\` (${paths.logs})`,
      })
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw timedOut('E_DEV_START_TIMEOUT', 'the dev stack did not become ready in time', {hint: 'see `iotctl dev logs`'})
}

/** Stop the stack cleanly (SIGTERM → fast shutdown of PostgreSQL); idempotent. */
export async function devDown(home = iotctlHome(), timeoutMs = 30_000): Promise<{stopped: boolean; pid?: number}> {
  const paths = devPaths(home)
  const record = await runningStack(home)
  if (!record) {
    // No stack process, but a PostgreSQL it started may have outlived a `kill -9`.
    return {stopped: await stopOrphanServer(paths.pgData)}
  }
  process.kill(record.pid, 'SIGTERM')
  const deadline = Date.now() + timeoutMs
  while (isProcessAlive(record.pid)) {
    if (Date.now() > deadline) {
      throw timedOut('E_DEV_STOP_TIMEOUT', `the dev stack (pid ${record.pid}) did not stop within ${timeoutMs / 1000}s`, {
        hint: `look at \`iotctl dev logs\`; as a last resort kill ${record.pid}`,
      })
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await stopOrphanServer(paths.pgData)
  await removeStackRecord(home)
  return {stopped: true, pid: record.pid}
}

/** Stop the stack if it runs and delete all of its data: database, logs, secrets. */
export async function devReset(home = iotctlHome()): Promise<{removed: string}> {
  await devDown(home)
  const paths = devPaths(home)
  await rm(paths.root, {recursive: true, force: true})
  return {removed: paths.root}
}
