import type {Database} from '../db/pool.js'
import {invalidInput, notFound} from '../core/errors.js'
import {hashFile} from './artifacts.js'
import {loadPublicKey} from './keys.js'
import {verifyManifest} from './manifest.js'
import {firmwareBySha256, getFirmware, type FirmwareRecord} from './store.js'

export interface VerifyResult {
  file: string
  sha256: string
  size: number
  firmware: Pick<FirmwareRecord, 'device_type' | 'version' | 'version_code' | 'key_id'>
  signature: 'valid'
}

/**
 * `firmware verify FILE`: the file's SHA-256 and size against a recorded manifest, and that
 * manifest's signature against the fleet's public key — what a device checks, from the outside.
 */
export async function verifyFirmwareFile(db: Database, options: {file: string; keysDir: string; ref?: {deviceType: string; version: string}}): Promise<VerifyResult> {
  const {sha256, size} = await hashFile(options.file).catch(() => {
    throw notFound('E_FILE_NOT_FOUND', `cannot read ${options.file}`, {hint: 'give the path of the firmware image'})
  })
  const candidates = options.ref ? [await getFirmware(db, options.ref.deviceType, options.ref.version)] : await firmwareBySha256(db, sha256)
  if (candidates.length === 0) {
    throw notFound('E_FIRMWARE_UNKNOWN', `no recorded firmware has SHA-256 ${sha256}`, {hint: 'the file was changed after upload, or never uploaded: name it with --firmware TYPE@VERSION to compare'})
  }
  const {key, keyId} = await loadPublicKey(options.keysDir)
  const record = candidates[0]!
  const manifest = verifyManifest(record.manifest, record.signature, key)
  if (!manifest) {
    throw invalidInput('E_SIGNATURE_INVALID', `the manifest of ${record.device_type}@${record.version} does not verify with key ${keyId}`, {
      hint: record.key_id === keyId ? 'the stored manifest or signature was altered' : `it was signed with key ${record.key_id}`,
    })
  }
  if (manifest.sha256 !== sha256 || manifest.size !== size) {
    throw invalidInput('E_ARTIFACT_MISMATCH', `${options.file} does not match ${record.device_type}@${record.version}: SHA-256 ${sha256} (${size} bytes), manifest says ${manifest.sha256} (${manifest.size} bytes)`, {
      hint: 'the file is not the uploaded artifact (tampered or truncated)',
    })
  }
  return {file: options.file, sha256, size, firmware: {device_type: manifest.device_type, version: manifest.version, version_code: manifest.version_code, key_id: manifest.key_id}, signature: 'valid'}
}
