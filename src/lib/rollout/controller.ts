import type {PoolClient} from '../db/pool.js'
import {connectClient, withTransaction} from '../db/pool.js'
import {faultPoint, FaultInjected} from '../core/faults.js'
import {setDesiredForDevices} from '../shadow/index.js'
import {claimTargets, publishCommitted, republishFor, type DispatchContext} from './dispatch.js'
import {applyHealthGates} from './health.js'
import {decide, dispatchBudget, rateWindowMs, type Decision} from './machine.js'
import {applyProgress, parseProgress} from './progress.js'
import {countTargets, logEvent, readRollout, revertDesired, type RolloutRecord} from './store.js'

/** One key for the whole fleet: the controller that holds it is the leader (DESIGN §1). */
export const LEADER_LOCK_KEY = 0x10_7c_71 // "iotctl"
/** Targets claimed per step (one transaction): large enough for throughput, small enough to keep locks short. */
const DISPATCH_PER_STEP = 5000

export interface ControllerOptions extends Omit<DispatchContext, 'now' | 'assignmentTtlMs'> {
  log: (line: string) => void
  tickMs?: number
  assignmentTtlMs?: number
  now?: () => number
  /** A standby retries the leader lock this often. */
  standbyMs?: number
}

export interface RolloutController {
  /** ota/progress from a device (any controller, leader or not, records reports). */
  handleProgress(deviceId: string, payload: Buffer): Promise<void>
  /** A device connected: publish its open assignments again. */
  deviceOnline(deviceId: string): Promise<void>
  isLeader(): boolean
  /** Begin the loop: lead or stand by. */
  start(): void
  /** One pass over active rollouts (the timer calls it; tests may too). */
  step(): Promise<void>
  stop(): Promise<void>
}

export function createRolloutController(options: ControllerOptions): RolloutController {
  const ctx: DispatchContext = {...options, now: options.now ?? Date.now, assignmentTtlMs: options.assignmentTtlMs ?? 24 * 3600_000}
  const log = options.log
  let leaderClient: PoolClient | undefined
  let stopped = false
  let running: Promise<void> | undefined
  let timer: NodeJS.Timeout | undefined

  const acquire = async (): Promise<boolean> => {
    if (leaderClient) return true
    const client = await connectClient(options.db.pool, options.db.url).catch(() => undefined)
    if (!client) return false
    // Session-level advisory lock: held while this connection lives; a crashed leader's session ends and a standby takes over.
    const {rows} = await client.query<{ok: boolean}>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK_KEY]).catch(() => ({rows: [{ok: false}]}))
    if (!rows[0]!.ok) {
      client.release()
      return false
    }
    client.on('error', () => {
      leaderClient = undefined
      log('lost the database connection: no longer the leader')
    })
    leaderClient = client
    log('leader: driving rollouts')
    return true
  }

  /** Set by a step that used its whole dispatch budget with more pending: the next step follows at once. */
  let more = false

  const step = async (): Promise<void> => {
    more = false
    if (stopped || !(await acquire())) return
    const {rows} = await options.db.pool.query<{name: string}>(`SELECT name FROM rollouts r WHERE state IN ('running', 'soaking')
      OR EXISTS (SELECT 1 FROM rollout_targets t WHERE t.rollout = r.name AND t.dispatched_at IS NOT NULL AND t.published_at IS NULL)
      OR (rollback AND state IN ('aborted', 'rolled-back') AND EXISTS (SELECT 1 FROM rollout_targets t WHERE t.rollout = r.name AND t.state = 'succeeded' AND t.rollback_state IS NULL))
      ORDER BY created_at`)
    for (const {name} of rows) {
      if (stopped) return
      await publishCommitted(ctx, name) // what an earlier crash left between commit and publish
      const decision = await advance(name)
      for (const hook of afterCommit.splice(0)) hook()
      if (decision?.action === 'dispatch' || decision?.action === 'abort') await publishCommitted(ctx, name)
    }
  }

  /** One transaction: time-outs, health gates, counts, the machine's decision, and its effects. */
  const advance = (name: string): Promise<Decision | undefined> => withTransaction(options.db.pool, options.db.url, async (client) => {
    const r = await readRollout(client, name, true)
    if (r.state === 'aborted' || r.state === 'rolled-back') {
      if (r.rollback) await sendRollbacks(client, r)
      return undefined
    }
    if (r.state !== 'running' && r.state !== 'soaking') return undefined
    await timeOut(client, r)
    await applyHealthGates(client, name, r.stage, r.health)
    const {counts, size} = await countTargets(client, name, r.stage)
    const now = ctx.now()
    const decision = decide({state: r.state, stage: r.stage, soakStartedAt: r.soak_started_at?.getTime(), counts, size},
      {stageCount: r.stages.length, soakMs: r.soak_ms, maxFailureRate: r.max_failure_rate, minDecided: r.min_decided, minCoverage: r.min_coverage}, now)
    await apply(client, r, decision, counts.pending)
    return decision
  })

  const apply = async (client: PoolClient, r: RolloutRecord, d: Decision, pending: number): Promise<void> => {
    switch (d.action) {
      case 'dispatch': {
        const rate = r.rate_per_minute ?? undefined
        const {rows} = rate === undefined ? {rows: [{n: 0, second: 0}]} : await client.query<{n: number; second: number}>(`SELECT count(*)::int AS n,
            count(*) FILTER (WHERE dispatched_at > clock_timestamp() - interval '1 second')::int AS second FROM rollout_targets
          WHERE rollout = $1 AND dispatched_at > clock_timestamp() - make_interval(secs => $2::float8 / 1000)`, [r.name, rateWindowMs(rate)])
        const sinceStage = ctx.now() - (r.stage_started_at?.getTime() ?? 0)
        const budget = dispatchBudget(pending, rate, rows[0]!.n, DISPATCH_PER_STEP, sinceStage, rows[0]!.second)
        const ids = await claimTargets(client, r.name, r.stage, budget)
        if (rate === undefined && ids.length === DISPATCH_PER_STEP && pending > ids.length) more = true
        if (ids.length === 0) return
        await setDesiredForDevices(client, ids, {firmware: r.version}, {actor: `rollout:${r.name}`})
        await logEvent(client, r.name, 'dispatched', {stage: r.stage, count: ids.length})
        // After this commit and before the publish: the crash-safety tests kill the controller here.
        afterCommit.push(() => faultPoint('rollout.after_dispatch'))
        return
      }
      case 'soak':
        await client.query("UPDATE rollouts SET state = 'soaking', soak_started_at = now(), updated_at = now() WHERE name = $1", [r.name])
        await logEvent(client, r.name, 'soaking', {stage: r.stage})
        return
      case 'advance':
        await client.query(`UPDATE rollouts SET state = 'running', stage = $2, stage_started_at = now(), soak_started_at = NULL, updated_at = now() WHERE name = $1`, [r.name, d.toStage])
        await logEvent(client, r.name, 'stage', {stage: d.toStage, percent: r.stages[d.toStage]})
        log(`${r.name}: stage ${d.toStage + 1} of ${r.stages.length} (${r.stages[d.toStage]}%)`)
        afterCommit.push(() => faultPoint('rollout.after_advance'))
        return
      case 'complete':
        await client.query("UPDATE rollouts SET state = 'completed', finished_at = now(), updated_at = now() WHERE name = $1", [r.name])
        await logEvent(client, r.name, 'completed')
        log(`${r.name}: completed`)
        return
      case 'abort':
        await client.query(`UPDATE rollouts SET state = CASE WHEN rollback THEN 'rolled-back' ELSE 'aborted' END, reason = $2, finished_at = now(), updated_at = now()
          WHERE name = $1`, [r.name, d.reason])
        await logEvent(client, r.name, 'aborted', {reason: d.reason, rollback: r.rollback})
        log(`${r.name}: aborted: ${d.reason}`)
        await revertDesired(client, r)
        if (r.rollback) await sendRollbacks(client, r)
        return
      case 'none':
    }
  }

  const afterCommit: Array<() => void> = []

  const sendRollbacks = async (client: PoolClient, r: RolloutRecord) => {
    const {rows} = await client.query<{device_id: string; previous_version: string | null}>(`UPDATE rollout_targets
      SET rollback_state = CASE WHEN previous_version IS NULL THEN 'impossible' ELSE 'sent' END, published_at = NULL,
          dispatched_at = COALESCE(dispatched_at, now()), updated_at = now()
      WHERE rollout = $1 AND state = 'succeeded' AND rollback_state IS NULL RETURNING device_id, previous_version`, [r.name])
    const back = rows.filter((row) => row.previous_version !== null)
    for (const version of new Set(back.map((row) => row.previous_version!))) {
      await setDesiredForDevices(client, back.filter((row) => row.previous_version === version).map((row) => row.device_id), {firmware: version}, {actor: `rollout:${r.name}`})
    }
    if (rows.length > 0) await logEvent(client, r.name, 'rollback', {sent: back.length, impossible: rows.length - back.length})
  }

  const timeOut = async (client: PoolClient, r: RolloutRecord) => {
    // machine.ts timeoutVerdict, as one statement: never answered and offline (or never seen) → unreached, else timed-out.
    await client.query(`UPDATE rollout_targets t SET state = CASE WHEN t.state = 'dispatched' AND (d.status = 'offline' OR d.last_seen_at IS NULL) THEN 'unreached' ELSE 'timed-out' END,
        reason = 'no report within the step timeout', decided_at = now(), updated_at = now()
      FROM devices d WHERE d.device_id = t.device_id AND t.rollout = $1 AND t.state IN ('dispatched', 'downloading', 'installing')
        AND t.updated_at < now() - make_interval(secs => $2::float8 / 1000)`, [r.name, r.step_timeout_ms])
  }

  /** An injected crash in-process: stop at once, and drop the session (its advisory lock goes with it) without cleanup. */
  const die = (error: FaultInjected) => {
    log(`${error.message}: controller stopped`)
    stopped = true
    leaderClient?.release(true)
    leaderClient = undefined
  }

  const loop = () => {
    if (stopped) return
    running = step().catch((error: Error) => {
      afterCommit.length = 0
      if (error instanceof FaultInjected) return die(error)
      log(`step failed: ${error.message}`)
    }).finally(() => {
      running = undefined
      if (!stopped) timer = setTimeout(loop, more ? 0 : leaderClient ? options.tickMs ?? 1000 : options.standbyMs ?? 2000)
    })
  }
  return {
    start: () => {
      if (!timer && !stopped) timer = setTimeout(loop, 0)
    },
    handleProgress: async (deviceId, payload) => {
      const report = parseProgress(payload)
      if (!report) return void log(`${deviceId}: malformed ota/progress ignored`)
      await applyProgress(options.db, deviceId, report)
    },
    deviceOnline: async (deviceId) => {
      await republishFor(ctx, deviceId).catch((error: Error) => log(`${deviceId}: republishing assignments failed: ${error.message}`))
    },
    isLeader: () => leaderClient !== undefined,
    step,
    stop: async () => {
      stopped = true
      clearTimeout(timer)
      await running?.catch(() => undefined)
      if (leaderClient) {
        await leaderClient.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK_KEY]).catch(() => undefined)
        leaderClient.release()
        leaderClient = undefined
      }
    },
  }
}
