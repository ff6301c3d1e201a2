import pg from 'pg'
import {afterAll, beforeAll, describe, expect, inject, it} from 'vitest'
import {connectClient, createPool} from '../../src/lib/db/pool.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'

describe('database pool', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => db.drop())

  it('survives the server killing its idle connections (as a restart does) and reconnects', async () => {
    const errors: Error[] = []
    const pool = await createPool(db.url, {onError: (e) => errors.push(e)})
    try {
      const clients = await Promise.all([pool.connect(), pool.connect()])
      clients.forEach((c) => c.release()) // idle in the pool now
      const admin = new pg.Client({connectionString: inject('adminDatabaseUrl')})
      await admin.connect()
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'iotctl' AND pid <> pg_backend_pid()",
        [new URL(db.url).pathname.slice(1)])
      await admin.end()
      // Both idle clients report their termination and leave the pool; the process does not crash.
      await expect.poll(() => errors.length, {timeout: 5000}).toBe(2)
      expect(pool.idleCount).toBe(0)
      const {rows} = await pool.query('SELECT 1 AS ok')
      expect(rows).toEqual([{ok: 1}])
    } finally {
      await pool.end()
    }
  })

  it('maps an unreachable server to exit 6 with the password masked', async () => {
    const url = 'postgres://iot:s3cret@127.0.0.1:1/iotctl'
    const pool = await createPool(url, {connectTimeoutMs: 2000})
    try {
      const error = await connectClient(pool, url).catch((e) => e)
      expect(error).toMatchObject({code: 'E_DB_UNAVAILABLE', exitCode: 6})
      expect(error.message).toContain('postgres://iot:***@127.0.0.1:1/iotctl')
      expect(error.message).not.toContain('s3cret')
      expect(error.hint).toMatch(/iotctl dev up/)
    } finally {
      await pool.end()
    }
  })
})
