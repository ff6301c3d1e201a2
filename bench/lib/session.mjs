// One embedded PostgreSQL for a benchmark run, started with the project's own code, in a
// temporary directory; stopped and deleted at the end, on error, and on SIGINT/SIGTERM.
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

export async function openSession({dist}) {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-bench-'))
  const home = join(dir, 'home') // an empty IOTCTL_HOME: no user contexts, no dev stack
  await mkdir(home)
  const log = new LogLines()
  let server
  let pool
  let closing

  const close = () => {
    closing ??= (async () => {
      killChildren()
      await pool?.end().catch(() => undefined)
      if (server) {
        await Promise.race([server.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 20_000))])
      }
      await rm(dir, {recursive: true, force: true})
    })()
    return closing
  }
  const onSignal = (signal) => {
    process.stderr.write(`\n${signal}: stopping PostgreSQL and deleting ${dir}\n`)
    close().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

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
    },
  }
}
