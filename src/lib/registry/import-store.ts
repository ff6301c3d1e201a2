import type {Database} from '../db/pool.js'
import {conflict} from '../core/errors.js'
import {withTransaction, type PoolClient} from '../db/pool.js'
import {emptyImport, importErrors, type ImportChunk, type ParsedRow, type RowError} from './import-parse.js'

export const ON_CONFLICT = ['fail', 'skip', 'update'] as const
export type OnConflict = (typeof ON_CONFLICT)[number]

export interface ImportResult {
  rows: number
  inserted: number
  updated: number
  skipped: number
}

const BATCH_SIZE = 5_000

const CONFLICT_SQL: Record<OnConflict, string> = {
  fail: 'ON CONFLICT (device_id) DO NOTHING',
  skip: 'ON CONFLICT (device_id) DO NOTHING',
  // Deprovisioned rows stay as they are: audit records are not resurrected by an import.
  update: `ON CONFLICT (device_id) DO UPDATE SET device_type = EXCLUDED.device_type,
    owner_user_id = EXCLUDED.owner_user_id, firmware_version = EXCLUDED.firmware_version,
    firmware_key = EXCLUDED.firmware_key, status = EXCLUDED.status, labels = EXCLUDED.labels,
    metadata = EXCLUDED.metadata, updated_at = now(), row_version = devices.row_version + 1
    WHERE devices.status <> 'deprovisioned'`,
}

/** One statement per batch: arrays through unnest keep it to 8 parameters whatever the size. */
/**
 * One statement per batch, the batch as a single JSON parameter: JSON.stringify is native and
 * PostgreSQL parses it in C, where pg's per-element escaping of eight text[] arrays cost the
 * client more CPU than the server spent inserting.
 */
async function insertBatch(client: PoolClient, batch: ParsedRow[], onConflict: OnConflict) {
  const {rows} = await client.query<{device_id: string; inserted: boolean}>(
    `INSERT INTO devices (device_id, device_type, owner_user_id, firmware_version, firmware_key, status, labels, metadata)
     SELECT r.device_id, r.device_type, r.owner_user_id, r.firmware_version, r.firmware_key, r.status, r.labels, r.metadata
     FROM jsonb_to_recordset($1::jsonb) AS r(device_id text, device_type text, owner_user_id bigint, firmware_version text,
       firmware_key text, status text, labels jsonb, metadata jsonb)
     ${CONFLICT_SQL[onConflict]} RETURNING device_id, (xmax = 0) AS inserted`,
    [JSON.stringify(batch.map((r) => r.device))])
  return rows
}

/**
 * All rows or none, in one transaction. Chunks come from a parser that is still reading the file:
 * chunk n+1 is parsed and validated while chunk n's INSERT runs on the server. After the first
 * bad row nothing more is inserted, but parsing goes on so that every bad row is reported; then
 * the transaction rolls back. `alsoInTransaction` runs after the last INSERT with the ids that were
 * inserted or updated (`devices import --issue-certs` issues certificates there).
 */
export async function importDevices(db: Database, source: ParsedRow[] | AsyncIterable<ImportChunk>, onConflict: OnConflict,
  alsoInTransaction?: (client: PoolClient, deviceIds: string[]) => Promise<void>): Promise<ImportResult> {
  return withTransaction(db.pool, db.url, async (client) => {
    const result: ImportResult = {rows: 0, inserted: 0, updated: 0, skipped: 0}
    const writtenIds: string[] = []
    const errors: RowError[] = []
    let pending: Promise<void> | undefined
    const write = async (batch: ParsedRow[]) => {
      const written = await insertBatch(client, batch, onConflict)
      const inserted = written.filter((r) => r.inserted).length
      result.inserted += inserted
      result.updated += written.length - inserted
      result.skipped += batch.length - written.length
      if (onConflict === 'fail' && written.length < batch.length) throw existingRows(batch, written)
      for (const row of written) writtenIds.push(row.device_id)
    }
    for await (const chunk of Array.isArray(source) ? chunksOf(source) : source) {
      result.rows += chunk.rows.length
      errors.push(...chunk.errors)
      if (errors.length > 0 || chunk.rows.length === 0) continue
      await pending // one statement at a time on the connection, in file order
      pending = write(chunk.rows)
      pending.catch(() => undefined) // awaited below; this only keeps Node from calling it unhandled meanwhile
    }
    await pending
    if (errors.length > 0) throw importErrors(errors)
    if (result.rows === 0) throw emptyImport()
    if (alsoInTransaction) await alsoInTransaction(client, writtenIds)
    return result
  })
}

async function* chunksOf(rows: ParsedRow[]): AsyncGenerator<ImportChunk> {
  for (let i = 0; i < rows.length; i += BATCH_SIZE) yield {rows: rows.slice(i, i + BATCH_SIZE), errors: []}
}

function existingRows(batch: ParsedRow[], written: Array<{device_id: string}>) {
  const done = new Set(written.map((r) => r.device_id))
  const clashes = batch.filter((r) => !done.has(r.device.device_id))
  const listed = clashes.slice(0, 20).map((r) => `  line ${r.line}: device_id ${r.device.device_id} already exists`).join('\n')
  return conflict('E_IMPORT_EXISTS', `${clashes.length}${clashes.length >= 20 ? '+' : ''} device(s) already registered; nothing was imported:\n${listed}`, {
    hint: 'pass --on-conflict skip to keep existing devices, or --on-conflict update to overwrite them',
    data: {lines: clashes.map((r) => r.line)},
  })
}
