import type {Database} from '../db/pool.js'
import {IotctlError, ExitCode, timedOut} from '../core/errors.js'
import {decide, failureStats, reachedCount, type Counts} from './machine.js'
import {getRollout, isFinal} from './operations.js'
import {countTargets, type RolloutRecord} from './store.js'

export interface RolloutStatus {
  name: string
  firmware: string
  state: RolloutRecord['state']
  stage: number
  stages: number[]
  stage_percent: number
  targets: number
  counts: Counts
  per_stage: Array<{stage: number; percent: number; size: number; counts: Counts}>
  failure_rate: number
  max_failure_rate: number
  decided: number
  min_decided: number
  coverage: number
  min_coverage: number
  soak_left_s: number | null
  eta_s: number | null
  reason: string | null
  /** Why a running rollout is not moving on right now (updating devices, soak, coverage). */
  waiting: string | null
  started_at: string | null
  finished_at: string | null
}

const sum = (c: Counts) => Object.values(c).reduce((a, b) => a + b, 0)

/**
 * `rollout status`: counts per state and stage, the failure rate against the threshold, the soak
 * time left and an estimate of the time to completion (remaining soaks plus rate-limited dispatch;
 * install time is not modelled, so it is a lower bound).
 */
export async function rolloutStatus(db: Database, name: string, now = Date.now()): Promise<RolloutStatus> {
  const r = await getRollout(db, name)
  const {counts, perStage} = await countTargets(db.pool, name)
  const throughStage = perStage.slice(0, r.stage + 1).reduce((acc, c) => {
    for (const k of Object.keys(c) as Array<keyof Counts>) acc[k] = (acc[k] ?? 0) + c[k]
    return acc
  }, {} as Counts)
  const {rate, decided} = failureStats(counts)
  const stageSize = sum(throughStage)
  const soakLeft = r.state === 'soaking' && r.soak_started_at ? Math.max(0, r.soak_started_at.getTime() + r.soak_ms - now) : null
  let eta: number | null = null
  if (!isFinal(r.state) && r.state !== 'pending') {
    const remainingSoaks = (r.stages.length - r.stage - (r.state === 'soaking' ? 1 : 0)) * r.soak_ms + (soakLeft ?? 0)
    const dispatchMs = r.rate_per_minute ? (counts.pending / r.rate_per_minute) * 60_000 : 0
    eta = Math.round((remainingSoaks + dispatchMs) / 1000)
  }
  const decision = decide({state: r.state, stage: r.stage, soakStartedAt: r.soak_started_at?.getTime(), counts: throughStage, size: stageSize},
    {stageCount: r.stages.length, soakMs: r.soak_ms, maxFailureRate: r.max_failure_rate, minDecided: r.min_decided, minCoverage: r.min_coverage}, now)
  return {
    waiting: decision.action === 'none' ? decision.waiting ?? null : null,
    name: r.name, firmware: `${r.device_type}@${r.version}`, state: r.state, stage: r.stage + 1, stages: r.stages, stage_percent: r.stages[r.stage]!,
    targets: r.target_count, counts,
    per_stage: perStage.map((c, i) => ({stage: i + 1, percent: r.stages[i]!, size: sum(c), counts: c})),
    failure_rate: rate, max_failure_rate: r.max_failure_rate, decided, min_decided: r.min_decided,
    coverage: stageSize === 0 ? 0 : reachedCount(throughStage) / stageSize, min_coverage: r.min_coverage,
    soak_left_s: soakLeft === null ? null : Math.ceil(soakLeft / 1000), eta_s: eta, reason: r.reason,
    started_at: r.started_at?.toISOString() ?? null, finished_at: r.finished_at?.toISOString() ?? null,
  }
}

/**
 * `rollout wait`: until the rollout finishes. Completed → the status; aborted or rolled back →
 * exit 7; not finished in time → exit 8 — the contract CI pipelines script against.
 */
export async function waitForRollout(db: Database, name: string, options: {timeoutMs: number; pollMs?: number; onStatus?: (s: RolloutStatus) => void; signal?: AbortSignal}): Promise<RolloutStatus> {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    const status = await rolloutStatus(db, name)
    options.onStatus?.(status)
    if (status.state === 'completed') return status
    if (status.state === 'aborted' || status.state === 'rolled-back') {
      throw new IotctlError('E_ROLLOUT_ABORTED', ExitCode.rolloutFailed, `rollout ${name} ${status.state === 'aborted' ? 'was aborted' : 'was aborted and rolled back'}: ${status.reason ?? 'no reason recorded'}`, {
        hint: `see \`iotctl rollout status ${name}\``, data: {status},
      })
    }
    if (Date.now() >= deadline || options.signal?.aborted) {
      throw timedOut('E_ROLLOUT_WAIT_TIMEOUT', `rollout ${name} is still ${status.state} (stage ${status.stage} of ${status.stages.length}) after the timeout`, {
        hint: `keep watching with \`iotctl rollout status ${name} --watch\``, data: {status},
      })
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.pollMs ?? 1000, Math.max(0, deadline - Date.now()))))
  }
}
