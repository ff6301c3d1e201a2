import {assertDeviceId} from '../core/device-id.js'
import {invalidInput, usageError} from '../core/errors.js'
import {ceilTo, DAY, durationMs, floorTo, formatDuration, HOUR, iso, MINUTE, parseTimeBound} from './time.js'

/**
 * Pure planning of `telemetry query`: which table answers a request, over which aligned range.
 *
 *   raw points   telemetry      (device_id, metric, ts)      partitioned by day
 *   1-minute     telemetry_1m   (device_id, metric, bucket)  count/sum/min/max, partitioned by day
 *   1-hour       telemetry_1h                                partitioned by month
 *   1-day        telemetry_1d                                kept forever
 *
 * --every picks the coarsest rollup whose interval divides it (5m → 1m, 6h → 1h, 1d → 1d); an
 * interval no rollup divides (90s, or anything under a minute) is aggregated from raw points, and a
 * bucket finer than the data simply holds single points. Coarser than 1d is refused (exit 4).
 * Buckets are aligned to the Unix epoch (UTC), so every rollup bucket lies inside exactly one
 * --every bucket and count/sum/min/max combine exactly (avg = Σsum / Σcount, never an average of averages).
 */
export const TIERS = ['raw', '1m', '1h', '1d'] as const
export type Tier = (typeof TIERS)[number]
export const TIER_TABLE: Record<Tier, string> = {raw: 'telemetry', '1m': 'telemetry_1m', '1h': 'telemetry_1h', '1d': 'telemetry_1d'}
/** Rollups from the coarsest down, with their bucket width. */
export const ROLLUPS: ReadonlyArray<{tier: Exclude<Tier, 'raw'>; ms: number}> = [{tier: '1d', ms: DAY}, {tier: '1h', ms: HOUR}, {tier: '1m', ms: MINUTE}]
export const MAX_EVERY_MS = DAY

export const AGGREGATES = ['avg', 'min', 'max', 'count', 'sum'] as const
export type Aggregate = (typeof AGGREGATES)[number]
export const METRIC_NAME = /^[A-Za-z0-9_.-]{1,64}$/ // as accepted by the ingest (payload.ts)

export interface QueryRequest {
  /** One device… */
  device?: string
  /** …or every device a selector matches (the fleet view). */
  selector?: string
  metric: string
  since: string
  until?: string
  /** Bucket width (a duration); without it, raw points. */
  every?: string
  agg?: string
}

export type QueryTarget = {kind: 'device'; device: string} | {kind: 'fleet'; selector: string}

export interface QueryPlan {
  target: QueryTarget
  metric: string
  /** Bucket width in ms; null = raw points. */
  every: number | null
  agg: Aggregate
  source: Tier
  table: string
  /** The range read, [from, until): the requested one widened to whole buckets. */
  from: number
  until: number
  requested: {from: number; until: number}
}

/** --every → ms: a positive duration no coarser than 1d, or exit 4. */
export function parseEvery(text: string): number {
  const ms = durationMs(text)
  if (ms === undefined) throw invalidInput('E_EVERY', `--every ${JSON.stringify(text)} is not a duration`, {hint: 'e.g. --every 1m, 5m, 1h, 6h or 1d'})
  if (ms > MAX_EVERY_MS) {
    throw invalidInput('E_EVERY', `--every ${text} is coarser than the coarsest rollup (1d)`, {hint: 'use --every 1d and aggregate further yourself (e.g. -o csv)'})
  }
  return ms
}

/** The table that answers buckets of `every` ms: the coarsest rollup that divides it, else raw points. */
export function chooseSource(every: number | null): Tier {
  if (every === null) return 'raw'
  return ROLLUPS.find((r) => every % r.ms === 0)?.tier ?? 'raw'
}

export function parseAggregate(text: string | undefined): Aggregate {
  if (text === undefined) return 'avg'
  if ((AGGREGATES as readonly string[]).includes(text)) return text as Aggregate
  throw invalidInput('E_AGG', `--agg ${JSON.stringify(text)} is not one of ${AGGREGATES.join(', ')}`, {hint: 'e.g. --agg avg'})
}

export function assertMetricName(metric: string): string {
  if (!METRIC_NAME.test(metric)) {
    throw invalidInput('E_METRIC', `invalid metric name ${JSON.stringify(metric)}`, {hint: 'metric names are 1-64 characters of A-Z, a-z, 0-9, "_", "." and "-"'})
  }
  return metric
}

function target(request: QueryRequest): QueryTarget {
  if (request.device !== undefined && request.selector !== undefined) {
    throw usageError('E_USAGE', '--device and --selector cannot be used together', {hint: 'query one device with --device, or a fleet with --selector'})
  }
  if (request.device !== undefined) return {kind: 'device', device: assertDeviceId(request.device)}
  if (request.selector !== undefined) return {kind: 'fleet', selector: request.selector}
  throw usageError('E_USAGE', 'one of --device or --selector is required', {hint: 'e.g. --device dev-1, or --selector site=berlin'})
}

/** Validate a request and decide table and range, without touching the database (bad input is exit 4 before exit 6). */
export function planQuery(request: QueryRequest, now: number): QueryPlan {
  const t = target(request)
  const metric = assertMetricName(request.metric)
  const agg = parseAggregate(request.agg)
  const every = request.every === undefined ? null : parseEvery(request.every)
  const from = parseTimeBound(request.since, '--since', now)
  const until = request.until === undefined ? now : parseTimeBound(request.until, '--until', now)
  if (until <= from) {
    throw invalidInput('E_TIME_RANGE', `--until (${iso(until)}) is not after --since (${iso(from)})`, {hint: 'give --since an earlier time than --until'})
  }
  const source = chooseSource(every)
  return {
    target: t, metric, every, agg, source, table: TIER_TABLE[source],
    from: every === null ? from : floorTo(from, every),
    until: every === null ? until : ceilTo(until, every),
    requested: {from, until},
  }
}

export const describeEvery = (every: number | null) => (every === null ? null : formatDuration(every))
