import semver from 'semver'
import type {Database} from '../db/pool.js'
import {withTransaction} from '../db/pool.js'
import {firmwareKey} from '../registry/firmware-key.js'
import {REPORTED_STATES, statesAccepting, type ReportedState} from './machine.js'

export interface ProgressReport {
  assignment: string
  state: ReportedState
  version?: string
  reason?: string
  detail?: string
}

/** Parse an ota/progress payload; undefined for anything malformed (logged, never thrown at the broker). */
export function parseProgress(payload: Buffer): ProgressReport | undefined {
  let body: Record<string, unknown>
  try {
    body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>
  } catch {
    return undefined
  }
  if (typeof body !== 'object' || body === null) return undefined
  const {assignment, state, version, reason, detail} = body
  if (typeof assignment !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,62}\/(install|rollback)$/.test(assignment)) return undefined
  if (typeof state !== 'string' || !(REPORTED_STATES as readonly string[]).includes(state)) return undefined
  const text = (v: unknown, max: number) => (typeof v === 'string' ? v.slice(0, max) : undefined)
  return {assignment, state: state as ReportedState, version: text(version, 128), reason: text(reason, 64), detail: text(detail, 500)}
}

const TERMINAL: readonly string[] = ['succeeded', 'failed', 'rejected', 'already-installed', 'rolled-back']

/**
 * Apply a device's report: the target moves only along the machine's transitions (a redelivered or
 * late report changes nothing), and the registry's firmware_version follows the version the device
 * says it runs. One transaction; the broker acknowledges the report after it.
 */
export async function applyProgress(db: Database, deviceId: string, report: ProgressReport): Promise<'applied' | 'ignored'> {
  const [rollout, kind] = report.assignment.split('/') as [string, 'install' | 'rollback']
  return withTransaction(db.pool, db.url, async (client) => {
    let changed: number
    if (kind === 'rollback') {
      const done = report.state === 'rolled-back'
      const result = await client.query(`UPDATE rollout_targets SET rollback_state = $3, state = CASE WHEN $4 THEN 'rolled-back' ELSE state END,
          reason = COALESCE($5, reason), updated_at = now()
        WHERE rollout = $1 AND device_id = $2 AND rollback_state = 'sent'`, [rollout, deviceId, done ? 'done' : 'failed', done && true, report.reason ?? null])
      changed = result.rowCount ?? 0
    } else {
      const result = await client.query(`UPDATE rollout_targets SET state = $3, reason = $4, updated_at = now(),
          decided_at = CASE WHEN $5 THEN now() ELSE decided_at END
        WHERE rollout = $1 AND device_id = $2 AND state = ANY($6::text[])`,
      [rollout, deviceId, report.state, report.reason ? `${report.reason}${report.detail ? `: ${report.detail}` : ''}` : null, TERMINAL.includes(report.state), statesAccepting(report.state)])
      changed = result.rowCount ?? 0
    }
    const version = report.version && semver.valid(report.version) === report.version ? report.version : undefined
    if (version) {
      await client.query(`UPDATE devices SET firmware_version = $2, firmware_key = $3, updated_at = now(), row_version = row_version + 1
        WHERE device_id = $1 AND firmware_version IS DISTINCT FROM $2`, [deviceId, version, firmwareKey(version)])
    }
    return changed > 0 ? 'applied' : 'ignored'
  })
}
