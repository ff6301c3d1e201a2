import {createHash} from 'node:crypto'
import SemVer from 'semver/classes/semver.js'
import valid from 'semver/functions/valid.js'
import type {Assignment, RefusalReason} from '../firmware/index.js'

/** Every reason a device gives on ota/progress (docs/PROTOCOL.md "Firmware updates (OTA)"). */
export type OtaReason = RefusalReason | 'download-failed' | 'size-mismatch' | 'checksum-mismatch' | 'boot-failed' | 'rollback-unavailable'

export type OtaState = 'downloading' | 'installing' | 'succeeded' | 'failed' | 'rejected' | 'already-installed' | 'rolled-back'

/** What a device does with an opened assignment, given the slots it holds. */
export type OtaDecision =
  | {action: 'install'}
  | {action: 'rollback'}
  | {action: 'report'; state: 'failed' | 'rejected' | 'already-installed'; reason?: OtaReason; detail?: string}

/** The two A/B slots: the version running, and the version the other slot holds (undefined: empty or unbootable). */
export interface Slots {
  running: string
  inactive?: string
}

/**
 * Fields the device relies on beyond what openAssignment checks (a signed payload can still be
 * malformed, e.g. from a buggy controller): undefined when usable, else what is wrong.
 */
export function shapeProblem(a: Partial<Assignment>): string | undefined {
  if (a.kind !== 'install' && a.kind !== 'rollback') return `kind ${JSON.stringify(a.kind)} is neither install nor rollback`
  if (typeof a.version !== 'string' || valid(a.version) === null) return `version ${JSON.stringify(a.version)} is not semver`
  if (a.min_version != null && (typeof a.min_version !== 'string' || valid(a.min_version) === null)) return `min_version ${JSON.stringify(a.min_version)} is not semver`
  if (a.kind === 'rollback') return undefined
  if (typeof a.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(a.sha256)) return 'sha256 must be 64 lowercase hex digits'
  if (!Number.isSafeInteger(a.size) || a.size! < 0) return 'size must be a non-negative integer'
  if (typeof a.url !== 'string' || !a.url.startsWith('https://')) return 'url must be an https URL'
  return undefined
}

/**
 * The version checks, in the protocol's order: anti-rollback (an install must be newer than the
 * running version; the same version is already installed), then min_version. A rollback is a
 * downgrade by design: it needs the inactive slot to hold the version named.
 */
export function decide(a: Pick<Assignment, 'kind' | 'version' | 'min_version'>, slots: Slots): OtaDecision {
  const running = new SemVer(slots.running)
  if (a.kind === 'rollback') {
    if (running.compare(a.version) === 0) return {action: 'report', state: 'already-installed'}
    if (slots.inactive !== undefined && new SemVer(slots.inactive).compare(a.version) === 0) return {action: 'rollback'}
    return {action: 'report', state: 'failed', reason: 'rollback-unavailable', detail: `the inactive slot holds ${slots.inactive ?? 'nothing bootable'}`}
  }
  const order = running.compare(a.version)
  if (order === 0) return {action: 'report', state: 'already-installed'}
  if (order > 0) return {action: 'report', state: 'failed', reason: 'downgrade', detail: `${a.version} is not newer than the running ${slots.running}`}
  if (a.min_version && running.compare(a.min_version) < 0) {
    return {action: 'report', state: 'rejected', reason: 'incompatible', detail: `needs at least ${a.min_version}, running ${slots.running}`}
  }
  return {action: 'install'}
}

/**
 * A stable number in [0, 1) for a device and an assignment: injected failures and hangs are the
 * same on every run (reproducible tests), and a republished assignment meets the same fate.
 */
export function otaRoll(kind: 'fail' | 'hang', deviceId: string, assignmentId: string): number {
  return createHash('sha256').update(`${kind}\n${deviceId}\n${assignmentId}`).digest().readUInt32BE(0) / 2 ** 32
}

/** The assignment id of an envelope, read without checking anything (for the report of a refusal). */
export function peekAssignmentId(raw: Buffer | string): string | undefined {
  try {
    const envelope = JSON.parse(raw.toString()) as {payload?: unknown}
    if (typeof envelope?.payload !== 'string') return undefined
    const id = (JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as {id?: unknown})?.id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

/** `Content-Range: bytes a-b/total` (RFC 9110 §14.4); undefined for anything else. */
export function parseContentRange(header: string | undefined): {start: number; end: number; total: number} | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header?.trim() ?? '')
  if (!match) return undefined
  const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])]
  return start <= end && end < total ? {start, end, total} : undefined
}

/**
 * Byte counts at which `downloading` is reported: the start and half-way, so a download costs
 * at most two progress messages whatever its size (a fleet of thousands must not flood the broker).
 */
export const progressMarks = (size: number): number[] => (size >= 2 ? [0, Math.floor(size / 2)] : [0])
