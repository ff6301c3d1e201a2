import type {KeyObject} from 'node:crypto'
import {stat} from 'node:fs/promises'
import semver from 'semver'
import type {Database, PoolClient} from '../db/pool.js'
import {withTransaction} from '../db/pool.js'
import {conflict, invalidInput, notFound} from '../core/errors.js'
import {assertDeviceType} from '../registry/index.js'
import {firmwareKey} from '../registry/firmware-key.js'
import type {ArtifactStore} from './artifacts.js'
import {loadSigningKey} from './keys.js'
import {signManifest, type FirmwareManifest} from './manifest.js'
import {FIRMWARE_COLUMNS, type FirmwareRecord} from './store.js'

export interface UploadOptions {
  file: string
  /** The object name (default TYPE-VERSION). */
  name?: string
  version: string
  deviceType: string
  minVersion?: string
  notes?: string
  allowDowngrade?: boolean
  keysDir: string
  passphrase: string
  store: ArtifactStore
}

const strictVersion = (text: string, flag: string) => {
  const v = semver.valid(text)
  if (!v || v !== text) throw invalidInput('E_VERSION', `${flag} ${JSON.stringify(text)} is not a semantic version`, {hint: 'e.g. 2.5.0 or 3.0.0-rc.1 (semver.org)'})
  return v
}

/** Check everything that needs no database: versions, type, the file, the key. */
async function checkInput(options: UploadOptions) {
  const version = strictVersion(options.version, '--version')
  const minVersion = options.minVersion === undefined ? null : strictVersion(options.minVersion, '--min-version')
  const deviceType = assertDeviceType(options.deviceType)
  const info = await stat(options.file).catch(() => undefined)
  if (!info?.isFile()) throw notFound('E_FILE_NOT_FOUND', `cannot read ${options.file}`, {hint: 'give the path of the firmware image'})
  if (options.notes !== undefined && options.notes.length > 4096) throw invalidInput('E_NOTES', '--notes is longer than 4096 characters')
  const signing = await loadSigningKey(options.keysDir, options.passphrase)
  return {version, minVersion, deviceType, signing}
}

/** TYPE-VERSION as an object name: every character outside [a-z0-9_-] becomes '-' (migration 0010 does the same). */
export const defaultFirmwareName = (deviceType: string, version: string) => `${deviceType}-${version}`.toLowerCase().replace(/[^a-z0-9_-]/g, '-')

export interface FirmwareInsert {
  name?: string
  deviceType: string
  version: string
  minVersion: string | null
  notes?: string
  allowDowngrade?: boolean
  signing: {key: KeyObject; keyId: string}
  artifact: {key: string; sha256: string; size: number}
}

/**
 * Record an uploaded artifact inside the caller's transaction: versions per device type only go up
 * (unless allowDowngrade); one advisory lock per device type serialises racing uploads.
 */
export async function insertFirmware(client: PoolClient, f: FirmwareInsert): Promise<FirmwareRecord> {
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`iotctl-firmware:${f.deviceType}`])
  const {rows: existing} = await client.query<{version: string; version_code: number}>(
    'SELECT version, version_code::int FROM firmware WHERE device_type = $1 ORDER BY firmware_key DESC', [f.deviceType])
  if (existing.some((e) => e.version === f.version)) {
    throw conflict('E_FIRMWARE_EXISTS', `${f.deviceType}@${f.version} is already uploaded`, {hint: 'versions are immutable: upload the change as a new version'})
  }
  const newest = existing[0]
  if (newest && semver.lte(f.version, newest.version) && !f.allowDowngrade) {
    throw invalidInput('E_FIRMWARE_NOT_NEWER', `${f.deviceType}@${f.version} is not newer than ${newest.version}, the newest recorded`, {
      hint: 'choose a higher version, or pass --allow-downgrade on purpose',
    })
  }
  const versionCode = Math.max(0, ...existing.map((e) => e.version_code)) + 1
  const manifest: FirmwareManifest = {schema: 1, device_type: f.deviceType, version: f.version, version_code: versionCode, min_version: f.minVersion,
    sha256: f.artifact.sha256, size: f.artifact.size, created_at: new Date().toISOString(), key_id: f.signing.keyId}
  const signed = signManifest(manifest, f.signing.key)
  const name = f.name ?? defaultFirmwareName(f.deviceType, f.version)
  try {
    const {rows} = await client.query<FirmwareRecord>(`INSERT INTO firmware (name, device_type, version, firmware_key, version_code, min_version, sha256, size, artifact, manifest, signature, key_id, notes, created_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ${FIRMWARE_COLUMNS}`,
    [name, f.deviceType, f.version, firmwareKey(f.version), versionCode, f.minVersion, f.artifact.sha256, f.artifact.size, f.artifact.key, signed.bytes, signed.signature, f.signing.keyId, f.notes ?? null, manifest.created_at])
    return rows[0]!
  } catch (error) {
    if ((error as {constraint?: string}).constraint === 'firmware_name_unique') {
      throw conflict('E_FIRMWARE_NAME', `a firmware named ${name} already exists`, {hint: 'choose another name'})
    }
    throw error
  }
}

/** `firmware upload`: hash and store the artifact, sign the manifest's exact bytes, record it. */
export async function uploadFirmware(db: Database, options: UploadOptions): Promise<FirmwareRecord> {
  const {version, minVersion, deviceType, signing} = await checkInput(options)
  // Content-addressed: storing before the transaction leaves at most an unreferenced file behind.
  const artifact = await options.store.put(options.file)
  return withTransaction(db.pool, db.url, (client) => insertFirmware(client, {name: options.name, deviceType, version, minVersion, notes: options.notes,
    allowDowngrade: options.allowDowngrade, signing, artifact}))
}
