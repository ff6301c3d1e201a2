import {readdir, readFile} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'
import type {Pool, PoolClient} from 'pg'
import {IotctlError} from '../core/errors.js'
import {connectClient} from './pool.js'

export interface Migration {
  version: number
  name: string
  sql: string
}

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url))
// Any constant works as long as every iotctl process uses the same one: the advisory lock
// serialises concurrent migrators (two CLI calls at first use, or a CLI and the services).
const MIGRATION_LOCK_KEY = 0x10_7c_71 // "iotctl"

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort()
  return Promise.all(files.map(async (file) => ({
    version: Number(file.slice(0, 4)),
    name: file.slice(5, -4),
    sql: await readFile(`${dir}/${file}`, 'utf8'),
  })))
}

/**
 * The versions already applied. A set, not a maximum: numbers are reserved per issue and merged
 * out of order (0009 may land before 0008), and a maximum would skip the late one forever.
 */
async function appliedVersions(client: PoolClient): Promise<Set<number>> {
  const {rows} = await client.query<{version: number}>('SELECT version FROM iotctl_schema_migrations')
  return new Set(rows.map((r) => r.version))
}

/**
 * Bring the schema up to date: all pending migrations in ONE transaction under a transaction-level
 * advisory lock, so a failure leaves the old schema intact and two migrators never interleave.
 * The fast path (already current) costs one query and takes no lock.
 */
export async function migrate(pool: Pool, url: string, migrations?: Migration[]): Promise<{applied: number[]}> {
  const all = migrations ?? (await loadMigrations())
  const client = await connectClient(pool, url)
  try {
    const current = await appliedVersions(client).catch((error: {code?: string}) => {
      if (error.code === '42P01') return new Set<number>() // the table does not exist yet
      throw error
    })
    if (all.every((m) => current.has(m.version))) return {applied: []}
    await client.query('BEGIN')
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
      await client.query(`CREATE TABLE IF NOT EXISTS iotctl_schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`)
      const now = await appliedVersions(client) // re-read under the lock: another process may have won
      const pending = all.filter((m) => !now.has(m.version))
      for (const m of pending) {
        await client.query(m.sql)
        await client.query('INSERT INTO iotctl_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
      }
      await client.query('COMMIT')
      return {applied: pending.map((m) => m.version)}
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw new IotctlError('E_MIGRATION', 70, `database migration failed: ${(error as Error).message}`, {
        hint: 'nothing was changed; rerun with --debug and report the output',
        cause: error,
      })
    }
  } finally {
    client.release()
  }
}
