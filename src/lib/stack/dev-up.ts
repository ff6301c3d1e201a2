import {createWriteStream, rmSync} from 'node:fs'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {randomBytes} from 'node:crypto'
import {conflict, type IotctlError} from '../core/errors.js'
import type {SinkSelection} from '../telemetry/index.js'
import {iotctlHome} from '../config/home.js'
import {isProcessAlive, readStackRecord, removeStackRecord, stackRecordFile, writeStackRecord, type StackRecord} from '../config/stack-record.js'
import {createPool} from '../db/pool.js'
import {migrate} from '../db/migrate.js'
import {startEmbeddedPostgres} from '../db/embedded.js'
import {devPaths} from './paths.js'
import {startDevBroker} from './dev-broker.js'
import {liveLine, logSink, startMonitor} from './dev-monitor.js'
import type {StackSample} from './summary.js'

export interface DevUpOptions {
  home?: string
  /** PostgreSQL port; 0 reuses the last one if free, else picks a free one. */
  dbPort: number
  /** MQTT over TLS ports for devices and services (0: any free port). */
  mqttPort: number
  servicePort: number
  maxPacketBytes?: number
  artifactPort?: number
  /** How often the rollout controller steps (default 1 s; the demo goes faster). */
  rolloutTickMs?: number
  /**
   * A person watching a foreground `dev up`: each service's lines (in its log file anyway) are
   * echoed here, prefixed `[service] `. Unset in the process `dev up --detach` starts, whose
   * stderr already is the stack's log file.
   */
  echo?: (line: string) => void
  /** At a terminal: raw output for the summary line rewritten in place every second. */
  live?: {write: (text: string) => void; columns?: () => number | undefined}
  /** A plain summary line in the stack's log this often, in ms (0: never; default 10 s). */
  summaryEveryMs?: number
  /** Where telemetry is stored (default PostgreSQL alone). */
  sinks?: SinkSelection
}

export interface RunningStack {
  record: StackRecord
  /** Stop everything (`reason`, e.g. the signal, is logged); resolves when the stack has stopped. */
  stop(reason?: string): Promise<void>
  /** Resolves when a telemetry sink refused for good (bad token, unknown bucket): stop and exit 6. */
  failed: Promise<IotctlError>
}

interface Secrets {
  password: string
  port?: number
}

async function loadSecrets(file: string): Promise<Secrets> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Secrets
  } catch {
    // The password is fixed at initdb time; keep it for every later start (0600).
    const secrets = {password: randomBytes(18).toString('base64url')}
    await writeFile(file, JSON.stringify(secrets), {mode: 0o600})
    return secrets
  }
}

/**
 * One stack per data directory. A lock left by a stack that was killed (-9) is taken over at
 * once when the recorded stack process is gone, instead of waiting for it to go stale.
 */
async function lockStack(root: string, home: string): Promise<() => Promise<void>> {
  const lockfile = await import('proper-lockfile')
  const options = {realpath: false, stale: 10_000, update: 2_000, lockfilePath: join(root, 'stack.lock')}
  try {
    return await lockfile.lock(root, options)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error
    const record = await readStackRecord(home)
    if (!record || !isProcessAlive(record.pid)) {
      await rm(options.lockfilePath, {recursive: true, force: true})
      return lockfile.lock(root, options)
    }
    throw conflict('E_STACK_RUNNING', `a dev stack is already running on ${root} (pid ${record.pid})`, {
      hint: 'see it with `iotctl dev status`, stop it with `iotctl dev down`, or use another IOTCTL_HOME',
    })
  }
}

/** Start the development stack in this process: one stack per data directory (a lock file). */
export async function startDevStack(options: DevUpOptions): Promise<RunningStack> {
  const home = options.home ?? iotctlHome()
  const paths = devPaths(home)
  await mkdir(paths.logs, {recursive: true, mode: 0o700})
  const release = await lockStack(paths.root, home)
  const live = options.live ? liveLine(options.live.write) : undefined
  const echo = options.echo && ((line: string) => (live ? live.around(() => options.echo!(line)) : options.echo!(line)))
  const sinks = {stack: logSink(paths.log('stack'), 'stack', echo), broker: logSink(paths.log('broker'), 'broker', echo),
    ingest: logSink(paths.log('ingest'), 'ingest', echo), shadow: logSink(paths.log('shadow'), 'shadow', echo),
    rollout: logSink(paths.log('rollout'), 'rollout', echo)}
  const log = sinks.stack.log
  const closeLogs = () => Promise.all(Object.values(sinks).map((sink) => sink.close()))
  const pgLog = createWriteStream(paths.log('postgres'), {flags: 'a'})
  try {
    const secrets = await loadSecrets(paths.secrets)
    log(`starting PostgreSQL (data ${paths.pgData})`)
    const server = await startEmbeddedPostgres({
      dataDir: paths.pgData,
      port: options.dbPort !== 0 ? options.dbPort : await reusablePort(secrets.port),
      password: secrets.password,
      onLog: (line) => pgLog.write(line.endsWith('\n') ? line : line + '\n'),
      onNotice: log,
    })
    await writeFile(paths.secrets, JSON.stringify({...secrets, port: server.port}), {mode: 0o600})
    log(`PostgreSQL ${server.version} on 127.0.0.1:${server.port}`)
    const pool = await createPool(server.url, {max: 8})
    let fail!: (error: IotctlError) => void
    const failed = new Promise<IotctlError>((resolve) => (fail = resolve))
    const {services, monitor} = await (async () => {
      const {applied} = await migrate(pool, server.url)
      if (applied.length > 0) log(`applied migrations ${applied.join(', ')}`)
      const services = await startDevBroker({home, db: {pool, url: server.url}, mqttPort: options.mqttPort,
        servicePort: options.servicePort, maxPacketBytes: options.maxPacketBytes, logs: {broker: sinks.broker.log, ingest: sinks.ingest.log, shadow: sinks.shadow.log, rollout: sinks.rollout.log},
        artifactPort: options.artifactPort, rolloutTickMs: options.rolloutTickMs, sinks: options.sinks, onFatal: fail})
      const monitor = await startMonitor({sample: () => sampleStack(services), heartbeatFile: paths.heartbeat,
        // At a terminal the live line replaces the periodic one on screen; the last one stays visible.
        log: live ? sinks.stack.file : log, last: log, everyMs: options.summaryEveryMs ?? 10_000,
        live: live && {line: live, columns: options.live?.columns}}).catch(async (error) => {
        await services.broker.close()
        throw error
      })
      return {services, monitor}
    })().catch(async (error) => {
      await pool.end()
      await server.stop()
      throw error
    })
    const record: StackRecord = {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      databaseUrl: server.url,
      dataDir: paths.root,
      postgres: {port: server.port, version: server.version},
      broker: {devicePort: services.broker.devicePort, servicePort: services.broker.servicePort, caDir: services.caDir, identityDir: services.identityDir},
      artifacts: {port: services.firmware.artifacts.port, baseUrl: services.firmware.artifacts.baseUrl},
    }
    await writeStackRecord(record, home)
    log(`ready (pid ${process.pid})`)
    let stopping: Promise<void> | undefined
    const stop = (reason?: string) => {
      // Remove the record first and synchronously: a signal handler elsewhere may exit the process.
      rmSync(stackRecordFile(home), {force: true})
      // Stop taking messages, store what was acknowledged-pending, then close the database.
      stopping ??= monitor.stop().then(() => log(reason ? `${reason}: stopping` : 'stopping'))
        .then(() => services.firmware.stop()).then(() => services.broker.close()).then(() => services.telemetry.flush()).then(() => services.shadow.stop()).then(() => pool.end()).then(() => server.stop())
        .then(async () => {
          log('stopped')
          pgLog.end()
          await closeLogs()
          await release()
        })
      return stopping
    }
    return {record, stop, failed}
  } catch (error) {
    sinks.stack.file(`failed to start: ${(error as Error).message}`) // the command prints the error itself
    pgLog.end()
    await closeLogs()
    await removeStackRecord(home)
    await release().catch(() => undefined)
    throw error
  }
}

function sampleStack(services: Awaited<ReturnType<typeof startDevBroker>>): StackSample {
  const {ingest} = services.telemetry
  const {messages, points, rejected, failures} = ingest.stats
  return {at: Date.now(), connections: services.broker.connections(), messages, points, rejected, failures,
    pendingPoints: ingest.pendingPoints, oldestPendingAt: ingest.oldestPendingAt}
}

async function reusablePort(previous: number | undefined): Promise<number> {
  if (previous === undefined) return 0
  const {createServer} = await import('node:net')
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(0))
    probe.listen(previous, '127.0.0.1', () => probe.close(() => resolve(previous)))
  })
}
