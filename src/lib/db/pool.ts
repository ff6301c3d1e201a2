import type {Pool, PoolClient, PoolConfig} from 'pg'
import {unavailable} from '../core/errors.js'
import {maskUrl} from '../core/url.js'

export type {Pool, PoolClient} from 'pg'

/** An open database as the domain sees it: a pool plus its URL (for error messages, printed masked). */
export interface Database {
  pool: Pool
  url: string
}

export interface PoolOptions {
  max?: number
  /** How long to wait for a connection before reporting the database as unavailable. */
  connectTimeoutMs?: number
  onError?: (error: Error) => void
}

/**
 * Every pool gets an 'error' listener: an idle client dropped by a database restart emits
 * 'error' on the pool, and without a listener Node crashes the process (pg docs, Pool events).
 */
export async function createPool(url: string, options: PoolOptions = {}): Promise<Pool> {
  const {default: pg} = await import('pg')
  const config: PoolConfig = {
    connectionString: url,
    max: options.max ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 10_000,
    application_name: 'iotctl',
  }
  const pool = new pg.Pool(config)
  pool.on('error', options.onError ?? ((error) => {
    if (process.env.IOTCTL_DEBUG) process.stderr.write(`database connection lost: ${error.message}\n`)
  }))
  return pool
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'])
// PostgreSQL SQLSTATEs that mean "this server will not talk to us" (Appendix A): bad password,
// unknown database or role, too many connections, server starting up or shutting down.
const REFUSED_SQLSTATES = new Set(['28P01', '28000', '3D000', '53300', '57P03', '57P01', '08006', '08001'])

/** True for errors that mean the database cannot be reached, as opposed to a bad query. */
export function isConnectionError(error: unknown): boolean {
  const e = error as {code?: string; message?: string}
  if (e?.code && (UNREACHABLE_CODES.has(e.code) || REFUSED_SQLSTATES.has(e.code))) return true
  return /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED/i.test(e?.message ?? '')
}

export function databaseUnavailable(url: string, error: unknown) {
  const reason = (error as Error)?.message || String(error)
  return unavailable('E_DB_UNAVAILABLE', `cannot reach PostgreSQL at ${maskUrl(url)}: ${reason}`, {
    hint: 'start the local stack with `iotctl dev up --detach`, or check --database-url / IOTCTL_DATABASE_URL and that the server is running',
    cause: error,
  })
}

/** Borrow a client, mapping "cannot connect" to exit 6 with the masked URL. */
export async function connectClient(pool: Pool, url: string): Promise<PoolClient> {
  try {
    return await pool.connect()
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(url, error) : error
  }
}

/** Run `fn` in one transaction; roll back on any error so nothing is half-applied. */
export async function withTransaction<T>(pool: Pool, url: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await connectClient(pool, url)
  try {
    await client.query('BEGIN')
    const result = await fn(client)
    await client.query('COMMIT')
    return result
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw isConnectionError(error) ? databaseUnavailable(url, error) : error
  } finally {
    client.release()
  }
}

/** One statement on a pooled client; a lost connection becomes exit 6 (databaseUnavailable). */
export async function queryRows<R extends object>(db: {pool: Pool; url: string}, text: string, values: unknown[] = []): Promise<R[]> {
  const client = await connectClient(db.pool, db.url)
  try {
    return (await client.query<R>(text, values)).rows
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(db.url, error) : error
  } finally {
    client.release()
  }
}
