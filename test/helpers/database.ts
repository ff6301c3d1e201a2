import {randomBytes} from 'node:crypto'
import {inject} from 'vitest'
import pg from 'pg'
import type {Database} from '../../src/lib/db/pool.js'
import {createPool} from '../../src/lib/db/pool.js'
import {migrate} from '../../src/lib/db/migrate.js'

export interface TestDatabase extends Database {
  /** Drop the database; call in afterAll. */
  drop(): Promise<void>
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: inject('adminDatabaseUrl')})
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** A fresh, empty database (not migrated) for one test file; returns its URL. */
export async function createEmptyDatabase(): Promise<{url: string; drop: () => Promise<void>}> {
  const name = `iotctl_t_${randomBytes(6).toString('hex')}`
  await admin((c) => c.query(`CREATE DATABASE ${name}`))
  return {
    url: withDatabase(inject('adminDatabaseUrl'), name),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  }
}

/** A fresh, migrated database with a pool, as the CLI would open it. */
export async function freshDatabase(): Promise<TestDatabase> {
  const {url, drop} = await createEmptyDatabase()
  const pool = await createPool(url)
  await migrate(pool, url)
  return {
    pool,
    url,
    drop: async () => {
      await pool.end()
      await drop()
    },
  }
}
