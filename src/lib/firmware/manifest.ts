import type {KeyObject} from 'node:crypto'
import {signBytes, verifyBytes} from './signing.js'

/** What `firmware upload` signs: every field a device needs to decide and to check the artifact. */
export interface FirmwareManifest {
  schema: 1
  device_type: string
  version: string
  /** Monotonic per device type: the upload order, so a device can compare without semver. */
  version_code: number
  min_version: string | null
  sha256: string
  size: number
  created_at: string
  key_id: string
}

/**
 * The exact bytes that are signed and stored. Keys in a fixed order; the bytes, not a re-encoding
 * of a parsed object, travel to devices and into the database.
 */
export function encodeManifest(m: FirmwareManifest): Buffer {
  const ordered: FirmwareManifest = {schema: 1, device_type: m.device_type, version: m.version, version_code: m.version_code,
    min_version: m.min_version, sha256: m.sha256, size: m.size, created_at: m.created_at, key_id: m.key_id}
  return Buffer.from(JSON.stringify(ordered), 'utf8')
}

export function signManifest(manifest: FirmwareManifest, key: KeyObject): {bytes: Buffer; signature: string} {
  const bytes = encodeManifest(manifest)
  return {bytes, signature: signBytes('manifest', bytes, key)}
}

export function verifyManifest(bytes: Uint8Array, signature: string, publicKey: KeyObject): FirmwareManifest | undefined {
  if (!verifyBytes('manifest', bytes, signature, publicKey)) return undefined
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as FirmwareManifest
  } catch {
    return undefined
  }
}
