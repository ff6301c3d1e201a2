import {stat} from 'node:fs/promises'
import semver from 'semver'
import type {Database} from '../db/pool.js'
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

/**
 * `firmware upload`: hash and store the artifact, sign the manifest's exact bytes, record it.
 * Versions per device type only go up (unless allowDowngrade); one advisory lock per device type
 * serialises two uploads racing for the next version code.
 */
export async function uploadFirmware(db: Database, options: UploadOptions): Promise<FirmwareRecord> {
  const {version, minVersion, deviceType, signing} = await checkInput(options)
  // Content-addressed: storing before the transaction leaves at most an unreferenced file behind.
  const artifact = await options.store.put(options.file)
  return withTransaction(db.pool, db.url, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`iotctl-firmware:${deviceType}`])
    const {rows: existing} = await client.query<{version: string; version_code: number}>(
      'SELECT version, version_code::int FROM firmware WHERE device_type = $1 ORDER BY firmware_key DESC', [deviceType])
    if (existing.some((e) => e.version === version)) {
      throw conflict('E_FIRMWARE_EXISTS', `${deviceType}@${version} is already uploaded`, {hint: 'versions are immutable: upload the change as a new version'})
    }
    const newest = existing[0]
    if (newest && semver.lte(version, newest.version) && !options.allowDowngrade) {
      throw invalidInput('E_FIRMWARE_NOT_NEWER', `${deviceType}@${version} is not newer than ${newest.version}, the newest recorded`, {
        hint: 'choose a higher version, or pass --allow-downgrade on purpose',
      })
    }
    const versionCode = Math.max(0, ...existing.map((e) => e.version_code)) + 1
    const manifest: FirmwareManifest = {schema: 1, device_type: deviceType, version, version_code: versionCode, min_version: minVersion,
      sha256: artifact.sha256, size: artifact.size, created_at: new Date().toISOString(), key_id: signing.keyId}
    const signed = signManifest(manifest, signing.key)
    const {rows} = await client.query<FirmwareRecord>(`INSERT INTO firmware (device_type, version, firmware_key, version_code, min_version, sha256, size, artifact, manifest, signature, key_id, notes, created_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ${FIRMWARE_COLUMNS}`,
    [deviceType, version, firmwareKey(version), versionCode, minVersion, artifact.sha256, artifact.size, artifact.key, signed.bytes, signed.signature, signing.keyId, options.notes ?? null, manifest.created_at])
    return rows[0]!
  })
}
