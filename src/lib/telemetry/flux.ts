import {DEFAULT_RETENTION, type RetentionPolicy} from './retention.js'
import type {Aggregate, QueryPlan, Tier} from './query-plan.js'
import {MEASUREMENT} from './sinks/line-protocol.js'
import {formatDuration, iso} from './time.js'

/**
 * Flux text for `telemetry setup influx` and `telemetry query` against InfluxDB 2.x (pure; the
 * unit tests compare it with the expected text; running it needs a real InfluxDB, not
 * VictoriaMetrics). The layout mirrors PostgreSQL's: raw points in BUCKET, and BUCKET_1m,
 * BUCKET_1h, BUCKET_1d holding count, sum, min and max per metric (tag `stat`), so `avg` is
 * Σsum / Σcount, never an average of averages, and each rollup is computed from the one below.
 */
export type RollupTier = Exclude<Tier, 'raw'>
export const ROLLUP_TIERS: readonly RollupTier[] = ['1m', '1h', '1d']
const SOURCE_OF: Record<RollupTier, Tier> = {'1m': 'raw', '1h': '1m', '1d': '1h'}
const TIER_MS: Record<RollupTier, number> = {'1m': 60_000, '1h': 3_600_000, '1d': 86_400_000}
/** How a stat of the tier below combines into the next tier (raw points: each stat from the values). */
const COMBINE: Record<string, {raw: string; rollup: string}> = {count: {raw: 'count', rollup: 'sum'}, sum: {raw: 'sum', rollup: 'sum'},
  min: {raw: 'min', rollup: 'min'}, max: {raw: 'max', rollup: 'max'}}
/** Late points: a task runs this long after its window closed. */
export const TASK_OFFSET = '30s'

/** A Flux string literal: backslash, quote and interpolation escaped. */
export function fluxString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$\{/g, '\\${')}"`
}

const duration = (ms: number) => formatDuration(ms)
export const bucketOf = (bucket: string, tier: Tier) => (tier === 'raw' ? bucket : `${bucket}_${tier}`)
export const taskName = (bucket: string, tier: RollupTier) => `iotctl-rollup-${bucket}-${tier}`

export interface BucketSpec {
  name: string
  /** Seconds; 0 keeps points forever (InfluxDB's "no retention rule"). */
  everySeconds: number
}

/** The four buckets with the same retention PostgreSQL uses by default (raw 7d, 1m 30d, 1h 365d, 1d forever). */
export function bucketSpecs(bucket: string, retention: RetentionPolicy = DEFAULT_RETENTION): BucketSpec[] {
  return (['raw', ...ROLLUP_TIERS] as Tier[]).map((tier) => ({name: bucketOf(bucket, tier), everySeconds: (retention[tier] ?? 0) / 1000}))
}

/** The Flux task that fills one rollup tier from the tier below, every window of that tier. */
export function rollupTaskFlux(bucket: string, org: string, tier: RollupTier): string {
  const every = duration(TIER_MS[tier])
  const source = SOURCE_OF[tier]
  const from = source === 'raw'
    ? `r._measurement == ${fluxString(MEASUREMENT)}`
    : `r._measurement == ${fluxString(MEASUREMENT)} and exists r.stat`
  const streams = Object.entries(COMBINE).map(([stat, how]) => {
    const pick = source === 'raw' ? '' : `\n    |> filter(fn: (r) => r.stat == ${fluxString(stat)})`
    const fn = source === 'raw' ? how.raw : how.rollup
    return `data${pick}
    |> aggregateWindow(every: ${every}, fn: ${fn}, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: ${fluxString(stat)})
    |> to(bucket: ${fluxString(bucketOf(bucket, tier))}, org: ${fluxString(org)})
    |> yield(name: ${fluxString(stat)})`
  })
  return `option task = {name: ${fluxString(taskName(bucket, tier))}, every: ${every}, offset: ${TASK_OFFSET}}

data = from(bucket: ${fluxString(bucketOf(bucket, source))})
    |> range(start: -task.every)
    |> filter(fn: (r) => ${from})

${streams.join('\n\n')}
`
}

/** Which stat of a rollup and which Flux function give each aggregate (avg: Σsum, divided by Σcount after the join). */
const VALUE_OF: Record<Aggregate, {raw: string; stat: string; fn: string}> = {
  avg: {raw: 'mean', stat: 'sum', fn: 'sum'}, sum: {raw: 'sum', stat: 'sum', fn: 'sum'}, min: {raw: 'min', stat: 'min', fn: 'min'},
  max: {raw: 'max', stat: 'max', fn: 'max'}, count: {raw: 'count', stat: 'count', fn: 'sum'},
}

/**
 * The Flux query equivalent of a `telemetry query` plan for one device: raw points, or buckets
 * of --every (aligned to the epoch, as PostgreSQL's date_bin) from the rollup bucket the plan
 * chose, with the count of raw points per bucket.
 */
export function queryFlux(plan: QueryPlan, bucket: string, limit: number): string {
  if (plan.target.kind !== 'device') throw new Error('queryFlux: one device only')
  const head = `from(bucket: ${fluxString(bucketOf(bucket, plan.source))})
    |> range(start: ${iso(plan.from)}, stop: ${iso(plan.until)})
    |> filter(fn: (r) => r._measurement == ${fluxString(MEASUREMENT)} and r._field == ${fluxString(plan.metric)} and r.device == ${fluxString(plan.target.device)})`
  if (plan.every === null) {
    return `${head}
    |> group()
    |> keep(columns: ["_time", "_value"])
    |> sort(columns: ["_time"])
    |> limit(n: ${limit})
`
  }
  const every = duration(plan.every)
  const raw = plan.source === 'raw'
  const v = VALUE_OF[plan.agg]
  const window = (fn: string) => `|> aggregateWindow(every: ${every}, fn: ${fn}, timeSrc: "_start", createEmpty: false)`
  const stat = (name: string) => (raw ? '' : `\n    |> filter(fn: (r) => r.stat == ${fluxString(name)})`)
  const value = plan.agg === 'avg' && !raw ? 'r._value_v / r._value_n' : 'float(v: r._value_v)'
  return `data = ${head}

v = data${stat(v.stat)}
    |> group()
    ${window(raw ? v.raw : v.fn)}
n = data${stat('count')}
    |> group()
    ${window(raw ? 'count' : 'sum')}

join(tables: {v: v, n: n}, on: ["_time"])
    |> map(fn: (r) => ({_time: r._time, _value: ${value}, count: int(v: r._value_n)}))
    |> sort(columns: ["_time"])
    |> limit(n: ${limit})
`
}

export interface ExistingBucket {
  id: string
  name: string
  everySeconds: number
}

export interface ExistingTask {
  id: string
  name: string
  flux: string
  status: string
}

export type SetupAction =
  | {kind: 'create-bucket'; bucket: BucketSpec}
  | {kind: 'update-bucket'; id: string; bucket: BucketSpec}
  | {kind: 'create-task'; name: string; flux: string}
  | {kind: 'update-task'; id: string; name: string; flux: string}

/**
 * What `telemetry setup influx` must change (pure): missing buckets and tasks are created, a
 * different retention or task text is updated, a disabled task is re-enabled, and what already
 * matches is left alone, so a second run changes nothing.
 */
export function planInfluxSetup(bucket: string, org: string, existing: {buckets: ExistingBucket[]; tasks: ExistingTask[]},
  retention: RetentionPolicy = DEFAULT_RETENTION): SetupAction[] {
  const actions: SetupAction[] = []
  for (const spec of bucketSpecs(bucket, retention)) {
    const found = existing.buckets.find((b) => b.name === spec.name)
    if (!found) actions.push({kind: 'create-bucket', bucket: spec})
    else if (found.everySeconds !== spec.everySeconds) actions.push({kind: 'update-bucket', id: found.id, bucket: spec})
  }
  for (const tier of ROLLUP_TIERS) {
    const name = taskName(bucket, tier)
    const flux = rollupTaskFlux(bucket, org, tier)
    const found = existing.tasks.find((t) => t.name === name)
    if (!found) actions.push({kind: 'create-task', name, flux})
    else if (found.flux.trim() !== flux.trim() || found.status !== 'active') actions.push({kind: 'update-task', id: found.id, name, flux})
  }
  return actions
}
