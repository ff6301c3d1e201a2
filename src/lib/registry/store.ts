import type {Database} from '../db/pool.js'
import {assertDeviceId} from '../core/device-id.js'
import {conflict, invalidInput, notFound} from '../core/errors.js'
import {parseSelector, type Requirement} from '../core/selector.js'
import {queryRows, withTransaction} from '../db/pool.js'
import {DEVICE_COLUMNS, fromRow, type Device, type DeviceInput, type DeviceRow, type DeviceStatus} from './device.js'
import {compileSelector} from './selector-sql.js'
import {revokeDeviceCertificates} from '../pki/store.js'

export const MAX_LIST_LIMIT = 10_000

const query = queryRows

const deviceNotFound = (id: string) =>
  notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(id)} not found`, {hint: 'list devices with `iotctl devices list`'})

export async function registerDevice(db: Database, input: DeviceInput): Promise<Device> {
  try {
    const rows = await query<DeviceRow>(db, `INSERT INTO devices (device_id, device_type, owner_user_id, firmware_version, firmware_key, status, labels, metadata)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${DEVICE_COLUMNS}`,
    [input.device_id, input.device_type, input.owner_user_id, input.firmware_version, input.firmware_key, input.status, input.labels, input.metadata])
    return fromRow(rows[0]!)
  } catch (error) {
    if ((error as {code?: string}).code === '23505') {
      throw conflict('E_DEVICE_EXISTS', `device ${JSON.stringify(input.device_id)} already exists`, {
        hint: `change it with \`iotctl devices update ${input.device_id}\`, or choose another id`,
      })
    }
    throw error
  }
}

export async function getDevice(db: Database, id: string): Promise<Device> {
  assertDeviceId(id)
  const rows = await query<DeviceRow>(db, `SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = $1`, [id])
  if (rows.length === 0) throw deviceNotFound(id)
  return fromRow(rows[0]!)
}

export interface ListOptions {
  selector?: string
  status?: DeviceStatus
  type?: string
  firmware?: string
  limit: number
  /** Opaque cursor from a previous page's `next`. */
  after?: string
}

export interface DevicePage {
  items: Device[]
  /** Pass as --after for the next page; null on the last page. */
  next: string | null
}

export function encodeCursor(deviceId: string): string {
  return Buffer.from(deviceId, 'utf8').toString('base64url')
}

export function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8')
  try {
    return assertDeviceId(id)
  } catch {
    throw invalidInput('E_CURSOR', `invalid cursor ${JSON.stringify(cursor)}`, {hint: 'pass the `next` value printed by the previous page'})
  }
}

/** Flags that are shorthands for selector requirements, ANDed with --selector. */
function requirementsFor(options: ListOptions): Requirement[] {
  const reqs = parseSelector(options.selector ?? '')
  if (options.type) reqs.push({kind: 'equals', key: 'type', field: true, value: options.type, negate: false})
  if (options.status) reqs.push({kind: 'equals', key: 'status', field: true, value: options.status, negate: false})
  if (options.firmware) reqs.push({kind: 'range', key: 'firmware', field: true, range: options.firmware, negate: false})
  return reqs
}

/** The SQL condition on `devices` for a selection (selector and shorthand flags), for other domains. */
export function deviceSelectionSql(options: Pick<ListOptions, 'selector' | 'type' | 'status' | 'firmware'>, params: unknown[]): string {
  return compileSelector(requirementsFor(options as ListOptions), params)
}

/**
 * Keyset pagination on the primary key (never OFFSET): a page costs the same at row 900,000 as at
 * row 0, and rows inserted meanwhile never shift or repeat what the cursor already passed.
 */
export interface ListQuery {
  text: string
  values: unknown[]
  limit: number
}

/** Validate and compile a listing without touching the database: bad input is exit 4 before exit 6. */
export function compileListQuery(options: ListOptions): ListQuery {
  if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > MAX_LIST_LIMIT) {
    throw invalidInput('E_LIMIT', `--limit must be between 1 and ${MAX_LIST_LIMIT}`, {hint: 'page through larger sets with --after and the printed cursor'})
  }
  const params: unknown[] = []
  const where = [compileSelector(requirementsFor(options), params)]
  if (options.after) {
    params.push(decodeCursor(options.after))
    where.push(`device_id > $${params.length}`)
  }
  params.push(options.limit + 1)
  return {text: `SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${where.join(' AND ')} ORDER BY device_id LIMIT $${params.length}`, values: params, limit: options.limit}
}

/**
 * Keyset pagination on the primary key (never OFFSET): a page costs the same at row 900,000 as at
 * row 0, and rows inserted meanwhile never shift or repeat what the cursor already passed.
 */
export async function listDevices(db: Database, options: ListOptions | ListQuery): Promise<DevicePage> {
  const q = 'text' in options ? options : compileListQuery(options)
  const rows = await query<DeviceRow>(db, q.text, q.values)
  const items = rows.slice(0, q.limit).map(fromRow)
  const next = rows.length > q.limit ? encodeCursor(items.at(-1)!.device_id) : null
  return {items, next}
}

export interface DevicePatch {
  device_type?: string
  owner_user_id?: number | null
  firmware_version?: string
  firmware_key?: string
  status?: 'active' | 'offline'
  setLabels?: Record<string, string>
  removeLabels?: string[]
  setMetadata?: Record<string, unknown>
  removeMetadata?: string[]
  expectedVersion?: number
}

/** One UPDATE under a row lock: the version check and the change are atomic. */
export async function updateDevice(db: Database, id: string, patch: DevicePatch): Promise<Device> {
  assertDeviceId(id)
  return withTransaction(db.pool, db.url, async (client) => {
    const current = (await client.query<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE device_id = $1 FOR UPDATE`, [id])).rows[0]
    if (!current) throw deviceNotFound(id)
    if (current.status === 'deprovisioned') {
      throw notFound('E_DEVICE_DEPROVISIONED', `device ${JSON.stringify(id)} is deprovisioned and kept for audit only`, {hint: 'register a new device id instead'})
    }
    if (patch.expectedVersion !== undefined && Number(current.row_version) !== patch.expectedVersion) {
      throw conflict('E_VERSION_CONFLICT', `device ${id} is at version ${current.row_version}, not ${patch.expectedVersion}`, {hint: 'get the device again and retry with its current version'})
    }
    const {rows} = await client.query<DeviceRow>(`UPDATE devices SET
        device_type = COALESCE($2, device_type),
        owner_user_id = CASE WHEN $3::boolean THEN $4::bigint ELSE owner_user_id END,
        firmware_version = COALESCE($5, firmware_version),
        firmware_key = COALESCE($6, firmware_key),
        status = COALESCE($7, status),
        labels = (labels || $8::jsonb) - $9::text[],
        metadata = (metadata || $10::jsonb) - $11::text[],
        updated_at = now(),
        row_version = row_version + 1
      WHERE device_id = $1 RETURNING ${DEVICE_COLUMNS}`,
    [id, patch.device_type ?? null, patch.owner_user_id !== undefined, patch.owner_user_id ?? null,
      patch.firmware_version ?? null, patch.firmware_key ?? null, patch.status ?? null,
      patch.setLabels ?? {}, patch.removeLabels ?? [], patch.setMetadata ?? {}, patch.removeMetadata ?? []])
    return fromRow(rows[0]!)
  })
}

/**
 * Keep the row for audit; a second deprovision changes nothing. Its certificates are revoked in
 * the same transaction (cessationOfOperation), so the next CRL locks it out.
 */
export async function deprovisionDevice(db: Database, id: string): Promise<Device & {revoked_certificates: string[]}> {
  assertDeviceId(id)
  return withTransaction(db.pool, db.url, async (client) => {
    const {rows} = await client.query<DeviceRow>(`UPDATE devices SET
        status = 'deprovisioned',
        updated_at = CASE WHEN status = 'deprovisioned' THEN updated_at ELSE now() END,
        row_version = CASE WHEN status = 'deprovisioned' THEN row_version ELSE row_version + 1 END
      WHERE device_id = $1 RETURNING ${DEVICE_COLUMNS}`, [id])
    if (rows.length === 0) throw deviceNotFound(id)
    const revoked = await revokeDeviceCertificates(client, id, 'cessationOfOperation')
    return {...fromRow(rows[0]!), revoked_certificates: revoked}
  })
}
