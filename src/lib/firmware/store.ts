import semver from 'semver'
import type {Database} from '../db/pool.js'
import {queryRows} from '../db/pool.js'
import {notFound} from '../core/errors.js'

export interface FirmwareRecord {
  firmware_id: number
  name: string
  device_type: string
  version: string
  version_code: number
  min_version: string | null
  sha256: string
  size: number
  artifact: string
  key_id: string
  notes: string | null
  created_at: string
}

export interface SignedFirmware extends FirmwareRecord {
  manifest: Buffer
  signature: string
}

export const FIRMWARE_COLUMNS = 'firmware_id::int, name, device_type, version, version_code::int, min_version, sha256, size::int, artifact, key_id, notes, created_at'

/** `T@V` as `rollout create --firmware` takes it. */
export function parseFirmwareRef(text: string): {deviceType: string; version: string} | undefined {
  const at = text.lastIndexOf('@')
  if (at <= 0) return undefined
  const version = semver.valid(text.slice(at + 1))
  return version ? {deviceType: text.slice(0, at), version} : undefined
}

export async function getFirmware(db: Database, deviceType: string, version: string): Promise<SignedFirmware> {
  const rows = await queryRows<SignedFirmware>(db, `SELECT ${FIRMWARE_COLUMNS}, manifest, signature FROM firmware WHERE device_type = $1 AND version = $2`, [deviceType, version])
  if (rows.length === 0) {
    const known = await queryRows<{version: string}>(db, 'SELECT version FROM firmware WHERE device_type = $1 ORDER BY version_code DESC LIMIT 5', [deviceType])
    throw notFound('E_FIRMWARE_NOT_FOUND', `no firmware ${deviceType}@${version}`, {
      hint: known.length > 0 ? `recorded for ${deviceType}: ${known.map((k) => k.version).join(', ')}` : `upload it with \`iotctl firmware upload FILE --version ${version} --device-type ${deviceType}\``,
      data: {known: known.map((k) => k.version)},
    })
  }
  return rows[0]!
}

export async function listFirmware(db: Database, options: {deviceType?: string} = {}): Promise<FirmwareRecord[]> {
  return queryRows<FirmwareRecord>(db, `SELECT ${FIRMWARE_COLUMNS} FROM firmware WHERE ($1::text IS NULL OR device_type = $1)
    ORDER BY device_type, version_code`, [options.deviceType ?? null])
}

export async function firmwareBySha256(db: Database, sha256: string): Promise<SignedFirmware[]> {
  return queryRows<SignedFirmware>(db, `SELECT ${FIRMWARE_COLUMNS}, manifest, signature FROM firmware WHERE sha256 = $1 ORDER BY firmware_id`, [sha256])
}
