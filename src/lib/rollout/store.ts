import type {Database, PoolClient} from '../db/pool.js'
import {withTransaction} from '../db/pool.js'
import {notFound} from '../core/errors.js'
import {deviceSelectionSql} from '../registry/index.js'
import {firmwareKey} from '../registry/firmware-key.js'
import {setDesiredForDevices} from '../shadow/index.js'
import {emptyCounts, type Counts, type RolloutState} from './machine.js'

export interface RolloutRecord {
  name: string
  firmware_id: number
  device_type: string
  version: string
  selector: string | null
  canary_selector: string | null
  stages: number[]
  soak_ms: number
  max_failure_rate: number
  min_decided: number
  min_coverage: number
  rate_per_minute: number | null
  step_timeout_ms: number
  health: string | null
  rollback: boolean
  state: RolloutState
  paused_from: RolloutState | null
  stage: number
  stage_started_at: Date | null
  soak_started_at: Date | null
  target_count: number
  reason: string | null
  created_at: Date
  started_at: Date | null
  finished_at: Date | null
}

export const ROLLOUT_COLUMNS = `r.name, r.firmware_id::int, f.device_type, f.version, r.selector, r.canary_selector, r.stages, r.soak_ms::float8 AS soak_ms,
  r.max_failure_rate, r.min_decided, r.min_coverage, r.rate_per_minute, r.step_timeout_ms::float8 AS step_timeout_ms, r.health, r.rollback,
  r.state, r.paused_from, r.stage, r.stage_started_at, r.soak_started_at, r.target_count, r.reason, r.created_at, r.started_at, r.finished_at`

export const rolloutNotFound = (name: string) =>
  notFound('E_ROLLOUT_NOT_FOUND', `no rollout ${JSON.stringify(name)}`, {hint: 'list rollouts with `iotctl rollout list`'})

export async function readRollout(client: PoolClient | Database['pool'], name: string, lock = false): Promise<RolloutRecord> {
  const {rows} = await client.query<RolloutRecord>(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts r JOIN firmware f USING (firmware_id)
    WHERE r.name = $1 ${lock ? 'FOR UPDATE OF r' : ''}`, [name])
  if (rows.length === 0) throw rolloutNotFound(name)
  return rows[0]!
}

/** The devices a rollout targets: its firmware's type, the selector, not deprovisioned, firmware below V (or unknown). */
export function targetSelectionSql(r: {selector: string | null; device_type: string; version: string}, params: unknown[]): string {
  const where = deviceSelectionSql({selector: r.selector ?? undefined, type: r.device_type}, params)
  params.push(firmwareKey(r.version))
  return `${where} AND status <> 'deprovisioned' AND (firmware_key IS NULL OR firmware_key < $${params.length})`
}

/** What a selection matched, step by step: for the "empty target set" error. */
export async function explainSelection(client: PoolClient, r: {selector: string | null; device_type: string; version: string}): Promise<Record<string, number>> {
  const count = async (sql: string, params: unknown[]) => Number((await client.query<{n: string}>(`SELECT count(*) AS n FROM devices WHERE ${sql}`, params)).rows[0]!.n)
  const p1: unknown[] = []
  const ofType = await count(deviceSelectionSql({type: r.device_type}, p1) + " AND status <> 'deprovisioned'", p1)
  const p2: unknown[] = []
  const selected = await count(deviceSelectionSql({selector: r.selector ?? undefined, type: r.device_type}, p2) + " AND status <> 'deprovisioned'", p2)
  const p3: unknown[] = []
  const below = await count(targetSelectionSql(r, p3), p3)
  return {[`of type ${r.device_type}`]: ofType, 'matching the selector': selected, [`below ${r.version}`]: below}
}

/**
 * Fix the targets when the rollout starts: count them, then one INSERT … SELECT that writes each
 * target's final stage (width_bucket: the number of stage boundaries at or below its position).
 * Positions are ordered by named canaries first, then SHA-256(rollout/device) — planner.ts
 * canaryRank, the same order in JS. previous_version is kept for rollback.
 */
export async function resolveTargets(client: PoolClient, r: RolloutRecord, bounds: (total: number, canaries: number | undefined) => number[]): Promise<number> {
  const params: unknown[] = [r.name]
  const where = targetSelectionSql(r, params)
  let canaryExpr = 'false'
  if (r.canary_selector) canaryExpr = `(${deviceSelectionSql({selector: r.canary_selector}, params)})`
  const {rows} = await client.query<{total: number; canaries: number}>(`SELECT count(*)::int AS total, count(*) FILTER (WHERE ${canaryExpr})::int AS canaries
    FROM devices WHERE $1::text IS NOT NULL AND ${where}`, params)
  const {total, canaries} = rows[0]!
  if (total === 0) return 0
  const boundaries = bounds(total, r.canary_selector ? canaries : undefined).slice(0, -1)
  // The sort of 100,000 hashes spills to disk at the default 4 MB (measured: 9 MB).
  await client.query("SET LOCAL work_mem = '64MB'")
  params.push(boundaries)
  const stage = boundaries.length === 0 ? `0 + 0 * cardinality($${params.length}::int[])` : `width_bucket(position, $${params.length}::int[])`
  await client.query(`INSERT INTO rollout_targets (rollout, device_id, position, stage, previous_version)
    SELECT $1, device_id, position, ${stage}, firmware_version
    FROM (SELECT device_id, firmware_version, (row_number() OVER (ORDER BY is_canary DESC, rank COLLATE "C"))::int - 1 AS position
          FROM (SELECT device_id, firmware_version, ${canaryExpr} AS is_canary,
                       encode(sha256(convert_to($1 || '/' || device_id, 'UTF8')), 'hex') AS rank
                FROM devices WHERE ${where}) t) o`, params)
  return total
}

export async function countTargets(client: PoolClient | Database['pool'], name: string, throughStage?: number): Promise<{counts: Counts; size: number; perStage: Counts[]}> {
  const {rows} = await client.query<{stage: number; state: keyof Counts; n: number}>(
    'SELECT stage, state, count(*)::int AS n FROM rollout_targets WHERE rollout = $1 GROUP BY stage, state', [name])
  const counts = emptyCounts()
  const perStage: Counts[] = []
  let size = 0
  for (const row of rows) {
    perStage[row.stage] ??= emptyCounts()
    perStage[row.stage]![row.state] += row.n
    if (throughStage === undefined || row.stage <= throughStage) {
      counts[row.state] += row.n
      size += row.n
    }
  }
  for (let i = 0; i < perStage.length; i++) perStage[i] ??= emptyCounts()
  return {counts, size, perStage}
}

export async function logEvent(client: PoolClient, rollout: string, kind: string, detail: Record<string, unknown> = {}): Promise<void> {
  await client.query('INSERT INTO rollout_events (rollout, kind, detail) VALUES ($1, $2, $3)', [rollout, kind, detail])
}

/** On abort, devices that did not end up on the new version want their previous one again (shadows converge). */
export async function revertDesired(client: PoolClient, r: {name: string}): Promise<void> {
  const {rows} = await client.query<{device_id: string; previous_version: string | null}>(`SELECT device_id, previous_version FROM rollout_targets
    WHERE rollout = $1 AND dispatched_at IS NOT NULL AND state NOT IN ('succeeded', 'already-installed')`, [r.name])
  for (const version of new Set(rows.map((row) => row.previous_version))) {
    await setDesiredForDevices(client, rows.filter((row) => row.previous_version === version).map((row) => row.device_id), {firmware: version}, {actor: `rollout:${r.name}`})
  }
}

export {withTransaction}
