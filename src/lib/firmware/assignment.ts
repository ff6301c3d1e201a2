import type {KeyObject} from 'node:crypto'
import {signBytes, verifyBytes} from './signing.js'

/**
 * A signed OTA assignment (docs/PROTOCOL.md "Firmware"): published QoS 1 on devices/{id}/firmware.
 * `install` carries the artifact; `rollback` tells an A/B device to boot its previous slot again.
 */
export interface Assignment {
  schema: 1
  id: string
  kind: 'install' | 'rollback'
  rollout: string
  device: string
  device_type: string
  version: string
  version_code: number
  min_version: string | null
  sha256: string
  size: number
  url: string | null
  issued_at: string
  expires_at: string
}

/** On the wire: the assignment's exact bytes (base64), a signature over them, and the key that made it. */
export interface AssignmentEnvelope {
  payload: string
  signature: string
  key_id: string
}

export function sealAssignment(assignment: Assignment, key: KeyObject, keyId: string): AssignmentEnvelope {
  const bytes = Buffer.from(JSON.stringify(assignment), 'utf8')
  return {payload: bytes.toString('base64'), signature: signBytes('assignment', bytes, key), key_id: keyId}
}

/** Reason codes a device reports on ota/progress when it refuses an assignment. */
export type RefusalReason = 'malformed' | 'bad-signature' | 'wrong-device' | 'wrong-device-type' | 'expired' | 'downgrade' | 'incompatible'

export type OpenResult = {ok: true; assignment: Assignment} | {ok: false; reason: RefusalReason; detail: string; id?: string}

/**
 * What a device checks before it acts: the envelope's shape, the signature with the key it trusts,
 * that the assignment names this device and its type, and that it has not expired.
 */
export function openAssignment(raw: Buffer | string, trusted: KeyObject, device: {id: string; type: string}, now = Date.now()): OpenResult {
  let envelope: Partial<AssignmentEnvelope>
  try {
    envelope = JSON.parse(raw.toString()) as Partial<AssignmentEnvelope>
  } catch {
    return {ok: false, reason: 'malformed', detail: 'not JSON'}
  }
  if (typeof envelope?.payload !== 'string' || typeof envelope.signature !== 'string') return {ok: false, reason: 'malformed', detail: 'payload and signature are required'}
  const bytes = Buffer.from(envelope.payload, 'base64')
  let assignment: Assignment
  try {
    assignment = JSON.parse(bytes.toString('utf8')) as Assignment
  } catch {
    return {ok: false, reason: 'malformed', detail: 'payload is not JSON'}
  }
  const id = typeof (assignment as Partial<Assignment> | null)?.id === 'string' ? assignment.id : undefined
  const shape = shapeProblem(assignment)
  if (shape) return {ok: false, reason: 'malformed', detail: shape, id}
  if (!verifyBytes('assignment', bytes, envelope.signature, trusted)) return {ok: false, reason: 'bad-signature', detail: 'signature does not verify with the trusted key', id}
  if (assignment.device !== device.id) return {ok: false, reason: 'wrong-device', detail: `assignment is for ${assignment.device}`, id}
  if (assignment.device_type !== device.type) return {ok: false, reason: 'wrong-device-type', detail: `assignment is for type ${assignment.device_type}`, id}
  if (!(Date.parse(assignment.expires_at) > now)) return {ok: false, reason: 'expired', detail: `expired at ${assignment.expires_at}`, id}
  return {ok: true, assignment}
}

const STRING_FIELDS = ['id', 'rollout', 'device', 'device_type', 'version', 'issued_at', 'expires_at'] as const

/** The payload's shape, checked first (PROTOCOL.md: `malformed` before anything else). */
function shapeProblem(a: unknown): string | undefined {
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return 'payload is not an object'
  const o = a as Record<string, unknown>
  const missing = STRING_FIELDS.filter((f) => typeof o[f] !== 'string')
  if (missing.length > 0) return `missing or not strings: ${missing.join(', ')}`
  if (o.kind !== 'install' && o.kind !== 'rollback') return 'kind must be install or rollback'
  if (o.kind === 'install' && (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256) || !Number.isSafeInteger(o.size) || typeof o.url !== 'string')) {
    return 'an install needs sha256, size and url'
  }
  if (Number.isNaN(Date.parse(o.expires_at as string))) return 'expires_at is not a time'
  return undefined
}
