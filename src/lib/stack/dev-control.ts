import {spawn} from 'node:child_process'
import {openSync, closeSync} from 'node:fs'
import {mkdir, readFile, rm} from 'node:fs/promises'
import {iotctlHome} from '../config/home.js'
import {isProcessAlive, readStackRecord, removeStackRecord, type StackRecord} from '../config/stack-record.js'
import {notFound, timedOut, unavailable} from '../core/errors.js'
import {maskUrl} from '../core/url.js'
import {stopOrphanServer} from '../db/embedded.js'
import {createPool, connectClient} from '../db/pool.js'
import {devPaths} from './paths.js'

export interface DevStatus {
  running: boolean
  pid?: number
  startedAt?: string
  dataDir: string
  database?: {url: string; reachable: boolean; version?: string; error?: string}
  broker?: {mqtt_url: string; service_url: string; ca_dir: string}
}

/** The running stack's record, or undefined (a record left by a dead process is removed). */
export async function runningStack(home = iotctlHome()): Promise<StackRecord | undefined> {
  const record = await readStackRecord(home)
  if (!record) return undefined
  if (isProcessAlive(record.pid)) return record
  await removeStackRecord(home)
  return undefined
}

export async function devStatus(home = iotctlHome()): Promise<DevStatus> {
  const paths = devPaths(home)
  const record = await runningStack(home)
  if (!record) {
    throw notFound('E_STACK_NOT_RUNNING', `no dev stack is running for ${home}`, {
      hint: 'start it with `iotctl dev up --detach`',
      data: {running: false, dataDir: paths.root},
    })
  }
  const status: DevStatus = {running: true, pid: record.pid, startedAt: record.startedAt, dataDir: paths.root,
    database: {url: maskUrl(record.databaseUrl), reachable: false},
    ...(record.broker ? {broker: {mqtt_url: `mqtts://127.0.0.1:${record.broker.devicePort}`,
      service_url: `mqtts://127.0.0.1:${record.broker.servicePort}`, ca_dir: record.broker.caDir}} : {})}
  const pool = await createPool(record.databaseUrl, {max: 1, connectTimeoutMs: 3000})
  try {
    const client = await connectClient(pool, record.databaseUrl)
    try {
      status.database!.version = (await client.query('SHOW server_version')).rows[0].server_version
      status.database!.reachable = true
    } finally {
      client.release()
    }
  } catch (error) {
    status.database!.error = (error as Error).message
  } finally {
    await pool.end()
  }
  return status
}

/**
 * Start `iotctl dev up` as a detached background process and wait until it is ready.
 * Idempotent, like `docker compose up -d`: a stack that already runs is returned as it is.
 */
export async function startDetached(argv: string[], options: {home?: string; timeoutMs?: number} = {}): Promise<StackRecord & {alreadyRunning: boolean}> {
  const home = options.home ?? iotctlHome()
  const existing = await runningStack(home)
  if (existing) return {...existing, alreadyRunning: true}
  const paths = devPaths(home)
  await mkdir(paths.logs, {recursive: true, mode: 0o700})
  const out = openSync(paths.log('stack'), 'a')
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'dev', 'up', ...argv], {
    detached: true,
    stdio: ['ignore', out, out],
    env: {...process.env, IOTCTL_HOME: home, IOTCTL_DETACHED: '1'},
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
