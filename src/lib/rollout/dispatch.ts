import type {KeyObject} from 'node:crypto'
import type {Database, PoolClient} from '../db/pool.js'
import {faultPoint} from '../core/faults.js'
import {sealAssignment, signPath, type Assignment} from '../firmware/index.js'
import {deviceTopic} from '../mqtt/topics.js'

export interface DispatchContext {
  db: Database
  publish: (topic: string, payload: string, options: {qos: 1}) => Promise<void>
  signing: {key: KeyObject; keyId: string}
  artifacts: {baseUrl: string; secret: Buffer}
  assignmentTtlMs: number
  now: () => number
}

interface OpenTarget {
  rollout: string
  device_id: string
  previous_version: string | null
  rollback_state: string | null
  device_type: string
  version: string
  version_code: number
  min_version: string | null
  sha256: string
  size: string
  artifact: string
}

const OPEN_TARGET_COLUMNS = `t.rollout, t.device_id, t.previous_version, t.rollback_state, f.device_type, f.version, f.version_code::int, f.min_version, f.sha256, f.size, f.artifact`

export const assignmentId = (rollout: string, kind: Assignment['kind']) => `${rollout}/${kind}`

/** A signed assignment for one target: install (with a fresh download URL) or rollback to its previous version. */
export function sealFor(ctx: DispatchContext, t: OpenTarget): string | undefined {
  const now = ctx.now()
  const expires = now + ctx.assignmentTtlMs
  const rollback = t.rollback_state === 'sent'
  if (rollback && !t.previous_version) return undefined
  const base: Omit<Assignment, 'kind' | 'version' | 'url' | 'sha256' | 'size' | 'version_code' | 'min_version'> = {schema: 1, id: assignmentId(t.rollout, rollback ? 'rollback' : 'install'),
    rollout: t.rollout, device: t.device_id, device_type: t.device_type, issued_at: new Date(now).toISOString(), expires_at: new Date(expires).toISOString()}
  const assignment: Assignment = rollback
    ? {...base, kind: 'rollback', version: t.previous_version!, version_code: 0, min_version: null, sha256: '', size: 0, url: null}
    : {...base, kind: 'install', version: t.version, version_code: t.version_code, min_version: t.min_version, sha256: t.sha256, size: Number(t.size),
      url: ctx.artifacts.baseUrl + signPath(ctx.artifacts.secret, `/artifacts/${t.artifact}`, Math.floor(expires / 1000))}
  return JSON.stringify(sealAssignment(assignment, ctx.signing.key, ctx.signing.keyId))
}

/**
 * Publish what was committed but not yet published (just dispatched, or left by a crash between
 * commit and publish), then record it. A crash after publishing and before recording publishes the
 * same assignment id again: devices treat it as a duplicate, so a device never installs twice.
 */
export async function publishCommitted(ctx: DispatchContext, rollout: string, limit = 5000): Promise<number> {
  let total = 0
  for (;;) {
    const {rows} = await ctx.db.pool.query<OpenTarget>(`SELECT ${OPEN_TARGET_COLUMNS} FROM rollout_targets t JOIN rollouts r ON r.name = t.rollout
      JOIN firmware f USING (firmware_id) WHERE t.rollout = $1 AND t.dispatched_at IS NOT NULL AND t.published_at IS NULL ORDER BY t.position LIMIT $2`, [rollout, limit])
    if (rows.length === 0) return total
    await Promise.all(rows.map(async (t) => {
      const payload = sealFor(ctx, t)
      if (payload) await ctx.publish(deviceTopic(t.device_id, 'firmware'), payload, {qos: 1})
    }))
    faultPoint('rollout.after_publish')
    await ctx.db.pool.query(`UPDATE rollout_targets SET published_at = now(),
        rollback_state = CASE WHEN rollback_state = 'sent' AND previous_version IS NULL THEN 'impossible' ELSE rollback_state END
      WHERE rollout = $1 AND device_id = ANY($2::text[])`, [rollout, rows.map((r) => r.device_id)])
    total += rows.length
    if (rows.length < limit) return total
  }
}

/** On (re)connect, a device gets every assignment still open for it, from the database (DESIGN §1). */
export async function republishFor(ctx: DispatchContext, deviceId: string): Promise<number> {
  const {rows} = await ctx.db.pool.query<OpenTarget>(`SELECT ${OPEN_TARGET_COLUMNS} FROM rollout_targets t JOIN rollouts r ON r.name = t.rollout
    JOIN firmware f USING (firmware_id)
    WHERE t.device_id = $1 AND t.published_at IS NOT NULL AND (
      (t.state IN ('dispatched', 'downloading', 'installing', 'unreached') AND r.state IN ('running', 'soaking', 'paused'))
      OR t.rollback_state = 'sent')`, [deviceId])
  for (const t of rows) {
    const payload = sealFor(ctx, t)
    if (payload) await ctx.publish(deviceTopic(t.device_id, 'firmware'), payload, {qos: 1})
  }
  return rows.length
}

/**
 * Mark the next targets dispatched, inside the step's transaction; returns their ids. The picked
 * rows are a MATERIALIZED CTE: with `WHERE device_id IN (SELECT … LIMIT n)` PostgreSQL may run the
 * subquery more than once and update more than n rows (measured here: 4 claimed for a budget of 1).
 */
export async function claimTargets(client: PoolClient, rollout: string, throughStage: number, count: number): Promise<string[]> {
  if (count <= 0) return []
  const {rows} = await client.query<{device_id: string}>(`WITH picked AS MATERIALIZED (
      SELECT device_id FROM rollout_targets WHERE rollout = $1 AND stage <= $2 AND state = 'pending'
      ORDER BY position LIMIT $3 FOR UPDATE SKIP LOCKED)
    UPDATE rollout_targets t SET state = 'dispatched', assignment_id = $4, dispatched_at = clock_timestamp(), updated_at = now()
    FROM picked WHERE t.rollout = $1 AND t.device_id = picked.device_id
    RETURNING t.device_id`, [rollout, throughStage, count, assignmentId(rollout, 'install')])
  return rows.map((r) => r.device_id)
}
