import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createPool} from '../../src/lib/db/pool.js'
import {loadMigrations, migrate} from '../../src/lib/db/migrate.js'
import {createEmptyDatabase} from '../helpers/database.js'

describe('migrations', () => {
  let db: {url: string; drop: () => Promise<void>}
  beforeAll(async () => {
    db = await createEmptyDatabase()
  })
  afterAll(async () => db.drop())

  it('two processes migrating at once apply each migration exactly once', async () => {
    const pools = await Promise.all([1, 2, 3].map(() => createPool(db.url)))
    try {
      const results = await Promise.all(pools.map((p) => migrate(p, db.url)))
      const latest = (await loadMigrations()).map((m) => m.version)
      expect(results.flatMap((r) => r.applied).sort((a, b) => a - b)).toEqual(latest)
      const {rows} = await pools[0]!.query('SELECT version FROM iotctl_schema_migrations ORDER BY version')
      expect(rows.map((r) => r.version)).toEqual(latest)
      expect((await migrate(pools[0]!, db.url)).applied).toEqual([])
    } finally {
      await Promise.all(pools.map((p) => p.end()))
    }
  })

  it('a failing migration leaves the schema as it was', async () => {
    const other = await createEmptyDatabase()
    const pool = await createPool(other.url)
    try {
      const good = await loadMigrations()
      const bad = [...good, {version: 9999, name: 'broken', sql: 'CREATE TABLE broken_t (id int); SELECT no_such_function()'}]
      await expect(migrate(pool, other.url, bad)).rejects.toMatchObject({code: 'E_MIGRATION'})
      const {rows} = await pool.query("SELECT to_regclass('public.devices') AS devices, to_regclass('public.broken_t') AS broken")
      expect(rows[0]).toEqual({devices: null, broken: null})
    } finally {
      await pool.end()
      await other.drop()
    }
  })

  it('a migration merged late with a lower number (0008 after 0009) is still applied', async () => {
    const other = await createEmptyDatabase()
    const pool = await createPool(other.url)
    try {
      // The newest real migration plays the late one: a higher number (9999) was applied before it.
      const all = await loadMigrations()
      const newest = all.at(-1)!
      const higher = {version: 9999, name: 'higher', sql: 'CREATE TABLE higher_t (id int)'}
      expect((await migrate(pool, other.url, [...all.slice(0, -1), higher])).applied).toContain(9999)
      expect((await migrate(pool, other.url, [...all, higher])).applied).toEqual([newest.version])
      const {rows} = await pool.query('SELECT version FROM iotctl_schema_migrations ORDER BY version')
      expect(rows.map((r) => r.version)).toEqual([...all.map((m) => m.version), 9999])
      expect((await migrate(pool, other.url, [...all, higher])).applied).toEqual([])
    } finally {
      await pool.end()
      await other.drop()
    }
  })
})
