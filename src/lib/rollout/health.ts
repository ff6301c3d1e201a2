import type {PoolClient} from '../db/pool.js'
import {parseHealth} from './planner.js'

const NEGATED = {'<': '>=', '<=': '>', '>': '<=', '>=': '<'} as const

/**
 * Health gates during a stage: an updated device whose telemetry since its update breaks a metric
 * check, or that is offline, counts as failed (with the check in its reason). Runs in the step's
 * transaction, so the decision that follows sees it.
 */
export async function applyHealthGates(client: PoolClient, rollout: string, throughStage: number, health: string | null): Promise<number> {
  if (!health) return 0
  let failed = 0
  for (const check of parseHealth(health)) {
    const breach = check.kind === 'status'
      ? `EXISTS (SELECT 1 FROM devices d WHERE d.device_id = t.device_id AND d.status = 'offline')`
      : `EXISTS (SELECT 1 FROM telemetry x WHERE x.device_id = t.device_id AND x.metric = $3 AND x.ts >= t.decided_at AND x.value ${NEGATED[check.op]} $4)`
    const params: unknown[] = [rollout, throughStage]
    if (check.kind === 'metric') params.push(check.metric, check.limit)
    params.push(`health check ${check.text} failed after the update`)
    const {rowCount} = await client.query(`UPDATE rollout_targets t SET state = 'failed', reason = $${params.length}, updated_at = now()
      WHERE t.rollout = $1 AND t.stage <= $2 AND t.state = 'succeeded' AND ${breach}`, params)
    failed += rowCount ?? 0
  }
  return failed
}
