import {createWriteStream, rmSync} from 'node:fs'
import {mkdir, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {randomBytes} from 'node:crypto'
import {conflict} from '../core/errors.js'
import {iotctlHome} from '../config/home.js'
import {isProcessAlive, readStackRecord, removeStackRecord, stackRecordFile, writeStackRecord, type StackRecord} from '../config/stack-record.js'
import {createPool} from '../db/pool.js'
import {migrate} from '../db/migrate.js'
import {startEmbeddedPostgres} from '../db/embedded.js'
import {devPaths} from './paths.js'
import {startDevBroker} from './dev-broker.js'

export interface DevUpOptions {
  home?: string
  /** PostgreSQL port; 0 reuses the last one if free, else picks a free one. */
  dbPort: number
  /** MQTT over TLS ports for devices and services (0: any free port). */
  mqttPort: number
  servicePort: number
  maxPacketBytes?: number
  log: (line: string) => void
}

export interface RunningStack {
  record: StackRecord
  /** Resolves when the stack has stopped (after stop() or a signal). */
  stop(): Promise<void>
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
  const pgLog = createWriteStream(paths.log('postgres'), {flags: 'a'})
  try {
    const secrets = await loadSecrets(paths.secrets)
    options.log(`starting PostgreSQL (data ${paths.pgData})`)
    const server = await startEmbeddedPostgres({
      dataDir: paths.pgData,
      port: options.dbPort !== 0 ? options.dbPort : await reusablePort(secrets.port),
      password: secrets.password,
      onLog: (line) => pgLog.write(line.endsWith('\n') ? line : line + '\n'),
      onNotice: options.log,
    })
    await writeFile(paths.secrets, JSON.stringify({...secrets, port: server.port}), {mode: 0o600})
    const pool = await createPool(server.url, {max: 8})
    const services = await (async () => {
      const {applied} = await migrate(pool, server.url)
      if (applied.length > 0) options.log(`applied migrations ${applied.join(', ')}`)
      return startDevBroker({home, db: {pool, url: server.url}, mqttPort: options.mqttPort,
        servicePort: options.servicePort, maxPacketBytes: options.maxPacketBytes, log: options.log})
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
      broker: {devicePort: services.broker.devicePort, servicePort: services.broker.servicePort, caDir: services.caDir},
    }
    await writeStackRecord(record, home)
    let stopping: Promise<void> | undefined
    const stop = () => {
      // Remove the record first and synchronously: a signal handler elsewhere may exit the process.
      rmSync(stackRecordFile(home), {force: true})
      // Stop taking messages, store what was acknowledged-pending, then close the database.
      stopping ??= services.broker.close().then(() => services.telemetry.flush()).then(() => pool.end()).then(() => server.stop()).then(async () => {
        pgLog.end()
        await release()
      })
      return stopping
    }
    return {record, stop}
  } catch (error) {
    pgLog.end()
    await removeStackRecord(home)
    await release().catch(() => undefined)
    throw error
  }
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
