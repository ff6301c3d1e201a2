import {assertDeviceId, assertNotReservedDeviceId} from '../core/device-id.js'
import {invalidInput} from '../core/errors.js'
import {assertLabels} from '../core/key-value.js'
import {firmwareKey} from './firmware-key.js'

export const DEVICE_STATUSES = ['active', 'offline', 'deprovisioned'] as const
export type DeviceStatus = (typeof DEVICE_STATUSES)[number]
export const DEVICE_TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/
/** Limits are explicit (DESIGN.md §4): metadata is for attributes, not payloads. */
export const MAX_METADATA_BYTES = 16 * 1024

/** A device as every output format shows it: the registry's column names. */
export interface Device {
  device_id: string
  owner_user_id: number | null
  device_type: string
  firmware_version: string | null
  last_seen_at: string | null
  status: DeviceStatus
  labels: Record<string, string>
  metadata: Record<string, unknown>
  created_at: string
  updated_at: string
  row_version: number
}

/** A validated device ready to store; firmware_key derived from firmware_version. */
export interface DeviceInput {
  device_id: string
  device_type: string
  owner_user_id: number | null
  firmware_version: string | null
  firmware_key: string | null
  status: DeviceStatus
  labels: Record<string, string>
  metadata: Record<string, unknown>
}

export const DEVICE_FIELDS = ['device_id', 'device_type', 'owner_user_id', 'firmware_version', 'status', 'labels', 'metadata'] as const

export function assertDeviceType(value: unknown): string {
  if (typeof value !== 'string' || !DEVICE_TYPE_PATTERN.test(value)) {
    throw invalidInput('E_DEVICE_TYPE', `invalid device type ${JSON.stringify(value)}: 1-64 characters of a-z, 0-9, "_" and "-"`, {hint: 'e.g. --type thermostat'})
  }
  return value
}

export function assertOwner(value: unknown): number | null {
  if (value === null || value === undefined || value === '') return null
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw invalidInput('E_OWNER', `invalid owner ${JSON.stringify(value)}: a user id is a non-negative integer`, {hint: 'e.g. --owner 42'})
  }
  return n
}

export function assertStatus(value: unknown, allowed: readonly DeviceStatus[] = DEVICE_STATUSES): DeviceStatus {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidInput('E_STATUS', `invalid status ${JSON.stringify(value)}: one of ${allowed.join(', ')}`, {hint: `use one of: ${allowed.join(', ')}`})
  }
  return value as DeviceStatus
}

export function assertMetadata(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidInput('E_METADATA', 'metadata must be an object of key/value pairs', {hint: 'e.g. {"room": "3.14"} in JSON Lines, room=3.14 in CSV or --meta'})
  }
  const size = Buffer.byteLength(JSON.stringify(value))
  if (size > MAX_METADATA_BYTES) {
    throw invalidInput('E_METADATA_SIZE', `metadata is ${size} bytes; the limit is ${MAX_METADATA_BYTES}`, {hint: 'store large documents elsewhere and keep a reference in metadata'})
  }
  return value as Record<string, unknown>
}

/** Validate one device from any source (flags, CSV, JSON Lines, manifests); unknown fields are errors. */
export function toDeviceInput(raw: Record<string, unknown>): DeviceInput {
  for (const key of Object.keys(raw)) {
    if (!(DEVICE_FIELDS as readonly string[]).includes(key)) {
      throw invalidInput('E_DEVICE_FIELD', `unknown field ${JSON.stringify(key)}`, {hint: `known fields: ${DEVICE_FIELDS.join(', ')}`})
    }
  }
  if (raw.device_id === undefined || raw.device_id === '') throw invalidInput('E_DEVICE_ID', 'device_id is required', {hint: 'every row needs a device_id column or key'})
  const firmware = raw.firmware_version === undefined || raw.firmware_version === null || raw.firmware_version === '' ? null : String(raw.firmware_version)
  const labels = raw.labels ?? {}
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw invalidInput('E_LABELS', 'labels must be an object of string values', {hint: 'e.g. {"site": "berlin"} in JSON Lines, site=berlin;tier=prod in CSV'})
  return {
    device_id: assertNotReservedDeviceId(assertDeviceId(String(raw.device_id))),
    device_type: assertDeviceType(raw.device_type),
    owner_user_id: assertOwner(raw.owner_user_id),
    firmware_version: firmware,
    firmware_key: firmware === null ? null : firmwareKey(firmware),
    // A new device cannot start deprovisioned: that state is reached only by `deprovision`.
    status: raw.status === undefined || raw.status === '' ? 'active' : assertStatus(raw.status, ['active', 'offline']),
    labels: assertLabels(labels as Record<string, unknown>),
    metadata: assertMetadata(raw.metadata),
  }
}

interface DeviceRow extends Omit<Device, 'owner_user_id' | 'last_seen_at' | 'created_at' | 'updated_at' | 'row_version'> {
  owner_user_id: string | null
  last_seen_at: Date | null
  created_at: Date
  updated_at: Date
  row_version: string
}

export const DEVICE_COLUMNS = 'device_id, owner_user_id, device_type, firmware_version, last_seen_at, status, labels, metadata, created_at, updated_at, row_version'

/** pg returns int8 as text and timestamptz as Date: normalise for output. */
export function fromRow(row: DeviceRow): Device {
  return {
    device_id: row.device_id,
    owner_user_id: row.owner_user_id === null ? null : Number(row.owner_user_id),
    device_type: row.device_type,
    firmware_version: row.firmware_version,
    last_seen_at: row.last_seen_at?.toISOString() ?? null,
    status: row.status,
    labels: row.labels,
    metadata: row.metadata,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    row_version: Number(row.row_version),
  }
}
export type {DeviceRow}
