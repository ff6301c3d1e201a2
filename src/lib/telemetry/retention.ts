import type {Database, PoolClient} from '../db/pool.js'
import {invalidInput, usageError} from '../core/errors.js'
import {connectClient, databaseUnavailable, isConnectionError} from '../db/pool.js'
import {TIER_TABLE, TIERS, type Tier} from './query-plan.js'
import {forgetPartitions} from './store.js'
import {DAY, durationMs, formatDuration, iso} from './time.js'

/**
 * Telemetry retention: how long each tier is kept (telemetry_retention), and enforcement that drops
 * WHOLE partitions whose entire range is older than the tier's cutoff. Rows are never DELETEd: a
 * partition that still holds anything newer than the cutoff stays, default partitions always stay,
 * and the 1-day rollup (unpartitioned) is kept forever.
 */
export type RetentionPolicy = Record<Tier, number | null> // ms; null = forever
export const DEFAULT_RETENTION: RetentionPolicy = {raw: 7 * DAY, '1m': 30 * DAY, '1h': 365 * DAY, '1d': null}
export const MIN_RETENTION_MS = DAY
const PARTITIONED: Record<Tier, string | null> = {raw: 'day', '1m': 'day', '1h': 'month', '1d': null}
const TIER_OF: Record<string, Tier> = Object.fromEntries(TIERS.map((t) => [TIER_TABLE[t], t]))

export interface PartitionInfo {
  /** The partitioned table: telemetry, telemetry_1m or telemetry_1h. */
  table: string
  partition: string
  /** Range [from, to) in epoch ms. */
  from: number
  to: number
}

/** Pure: the partitions to drop at `now` — those whose whole range ends at or before now − keep. */
export function planRetention(partitions: PartitionInfo[], policy: RetentionPolicy, now: number): PartitionInfo[] {
  return partitions
    .filter((p) => {
      const tier = TIER_OF[p.table]
      const keep = tier === undefined ? null : policy[tier]
      return keep !== null && p.to <= now - keep
    })
    .sort((a, b) => (a.table === b.table ? a.from - b.from : a.table < b.table ? -1 : 1))
}

/** Pure: `raw=7d 1m=30d 1h=365d 1d=forever` → changes; bad tiers or values are exit 4. */
export function parseRetentionAssignments(args: string[]): Partial<RetentionPolicy> {
  if (args.length === 0) throw usageError('E_USAGE', 'nothing to set', {hint: 'e.g. `iotctl telemetry retention set raw=7d 1m=30d 1h=365d`'})
  const changes: Partial<RetentionPolicy> = {}
  for (const arg of args) {
    const eq = arg.indexOf('=')
    const tier = arg.slice(0, eq) as Tier
    const text = arg.slice(eq + 1).trim().toLowerCase()
    if (eq < 1 || !TIERS.includes(tier)) {
      throw invalidInput('E_RETENTION', `${JSON.stringify(arg)} is not TIER=DURATION with a tier of ${TIERS.join(', ')}`, {hint: 'e.g. raw=7d 1m=30d 1h=365d'})
    }
    if (tier in changes) throw invalidInput('E_RETENTION', `${tier} is given twice`, {hint: 'give each tier once'})
    if (text === 'forever') {
      changes[tier] = null
      continue
    }
    if (tier === '1d') throw invalidInput('E_RETENTION', 'the 1d rollup is kept forever', {hint: 'set raw, 1m or 1h; 1d accepts only 1d=forever'})
    const ms = durationMs(text)
    if (ms === undefined) throw invalidInput('E_RETENTION', `${tier}=${JSON.stringify(text)}: not a duration`, {hint: 'e.g. 7d, 30d, 365d, 52w or forever'})
    if (ms < MIN_RETENTION_MS) {
      throw invalidInput('E_RETENTION', `${tier}=${text} is shorter than a day`, {hint: 'data is dropped by whole day or month partitions: keep at least 1d'})
    }
    changes[tier] = ms
  }
  return changes
}

/** Pure: what is odd about a policy (a finer tier outliving a coarser one is legal but rarely meant). */
export function retentionWarnings(policy: RetentionPolicy): string[] {
  const warnings: string[] = []
  const life = (tier: Tier) => policy[tier] ?? Infinity
  for (let i = 0; i + 1 < TIERS.length; i++) {
    const [finer, coarser] = [TIERS[i]!, TIERS[i + 1]!]
    if (life(finer) > life(coarser)) warnings.push(`${finer} is kept longer than ${coarser}: queries with --every ${coarser} will not see the older ${finer} data`)
  }
  return warnings
}

export interface TierRetention {
  tier: Tier
  table: string
  keep: string
  keep_seconds: number | null
  partitioned_by: string | null
  partitions: number
  oldest: string | null
  /** Partitions that enforcement would drop now. */
  expired: number
}

async function withClient<T>(db: Database, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await connectClient(db.pool, db.url)
  try {
    return await fn(client)
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(db.url, error) : error
  } finally {
    client.release()
  }
}

async function readPolicy(client: PoolClient): Promise<RetentionPolicy> {
  const policy = {...DEFAULT_RETENTION}
  const {rows} = await client.query<{tier: Tier; keep_seconds: string | null}>('SELECT tier, keep_seconds FROM telemetry_retention')
  for (const row of rows) policy[row.tier] = row.keep_seconds === null ? null : Number(row.keep_seconds) * 1000
  return policy
}

/** Bounded range partitions of the raw table and the partitioned rollups, from the catalogue (not from names). */
export async function listPartitions(client: PoolClient): Promise<PartitionInfo[]> {
  const {rows} = await client.query<{table: string; partition: string; from: Date; to: Date}>(`SELECT p.relname AS table,
      quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS partition, m[1]::timestamptz AS from, m[2]::timestamptz AS to
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class p ON p.oid = i.inhparent
      CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS m
    WHERE i.inhparent IN (to_regclass('telemetry'), to_regclass('telemetry_1m'), to_regclass('telemetry_1h')) AND m IS NOT NULL`)
  return rows.map((r) => ({table: r.table, partition: r.partition, from: r.from.getTime(), to: r.to.getTime()}))
}

function describe(policy: RetentionPolicy, partitions: PartitionInfo[], now: number): TierRetention[] {
  const expired = planRetention(partitions, policy, now)
  return TIERS.map((tier) => {
    const mine = partitions.filter((p) => p.table === TIER_TABLE[tier])
    const keep = policy[tier]
    return {
      tier, table: TIER_TABLE[tier], keep: keep === null ? 'forever' : formatDuration(keep), keep_seconds: keep === null ? null : keep / 1000,
      partitioned_by: PARTITIONED[tier], partitions: mine.length,
      oldest: mine.length === 0 ? null : iso(Math.min(...mine.map((p) => p.from))),
      expired: expired.filter((p) => p.table === TIER_TABLE[tier]).length,
    }
  })
}

export async function getRetention(db: Database, now = Date.now()): Promise<TierRetention[]> {
  return withClient(db, async (client) => describe(await readPolicy(client), await listPartitions(client), now))
}

export async function setRetention(db: Database, changes: Partial<RetentionPolicy>, now = Date.now()): Promise<{tiers: TierRetention[]; warnings: string[]}> {
  return withClient(db, async (client) => {
    const entries = Object.entries(changes) as Array<[Tier, number | null]>
    await client.query(`UPDATE telemetry_retention r SET keep_seconds = c.keep, updated_at = now()
      FROM unnest($1::text[], $2::bigint[]) AS c(tier, keep) WHERE r.tier = c.tier`,
    [entries.map(([t]) => t), entries.map(([, ms]) => (ms === null ? null : ms / 1000))])
    const policy = await readPolicy(client)
    return {tiers: describe(policy, await listPartitions(client), now), warnings: retentionWarnings(policy)}
  })
}

export interface DroppedPartition {
  tier: Tier
  table: string
  partition: string
  from: string
  to: string
}

export interface RetentionRun {
  /** Cutoff per tier (ISO), null when the tier is kept forever. */
  cutoffs: Record<Tier, string | null>
  dropped: DroppedPartition[]
  /** Partitions left for the next run: their table was busy past the lock timeout. */
  skipped: DroppedPartition[]
  /** Another process was enforcing retention at the same time; this run did nothing. */
  busy: boolean
}

const RETENTION_LOCK_KEY = 0x10_7c_72
const LOCK_TIMEOUT = '5s'

/**
 * Drop every partition whose whole range is past its tier's retention, each in its own short
 * transaction with a lock timeout: DROP of a partition briefly locks its parent, so a busy table
 * is skipped (and retried on the next run) rather than stalling the ingest. Idempotent; concurrent
 * runs are serialised by an advisory lock (the loser returns busy). Call it periodically.
 */
export async function enforceRetention(db: Database, now: Date | number = Date.now()): Promise<RetentionRun> {
  const at = typeof now === 'number' ? now : now.getTime()
  return withClient(db, async (client) => {
    const policy = await readPolicy(client)
    const cutoffs = Object.fromEntries(TIERS.map((t) => [t, policy[t] === null ? null : iso(at - policy[t]!)])) as Record<Tier, string | null>
    const run: RetentionRun = {cutoffs, dropped: [], skipped: [], busy: false}
    const {rows} = await client.query<{locked: boolean}>('SELECT pg_try_advisory_lock($1) AS locked', [RETENTION_LOCK_KEY])
    if (!rows[0]!.locked) return {...run, busy: true}
    try {
      for (const p of planRetention(await listPartitions(client), policy, at)) {
        const entry: DroppedPartition = {tier: TIER_OF[p.table]!, table: p.table, partition: p.partition, from: iso(p.from), to: iso(p.to)}
        await client.query('BEGIN')
        try {
          await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`)
          await client.query(`DROP TABLE IF EXISTS ${p.partition}`)
          await client.query('COMMIT')
          run.dropped.push(entry)
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          if ((error as {code?: string}).code !== '55P03') throw error // lock_not_available: next run
          run.skipped.push(entry)
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [RETENTION_LOCK_KEY]).catch(() => undefined)
    }
    if (run.dropped.length > 0) forgetPartitions()
    return run
  })
}
