import {usageError} from '../core/errors.js'
import {bucketOf, queryFlux} from './flux.js'
import {MAX_POINTS, type QueryPoint, type QueryResult, type TelemetryQuery} from './query.js'
import {describeEvery, planQuery, type QueryRequest} from './query-plan.js'
import {queryInflux} from './sinks/influx-api.js'
import type {InfluxSettings} from './sinks/types.js'
import {iso} from './time.js'

/**
 * `telemetry query` against an InfluxDB context: the same plan as PostgreSQL's (validation, range,
 * rollup tier), compiled to Flux. One device at a time: selectors match registry fields and
 * labels that InfluxDB does not have (fleet queries read PostgreSQL).
 */
export function planInfluxQuery(request: QueryRequest, bucket: string, now: number) {
  const plan = planQuery(request, now)
  if (plan.target.kind !== 'device') {
    throw usageError('E_INFLUX_SELECTOR', '--selector is not supported against InfluxDB', {
      hint: 'query one --device, or read the fleet from PostgreSQL with --telemetry-sink postgres (or postgres,influx)',
    })
  }
  return {plan, flux: queryFlux(plan, bucket, MAX_POINTS + 1)}
}

export async function queryTelemetryInflux(settings: InfluxSettings, request: QueryRequest, options: {now?: number} = {}): Promise<TelemetryQuery & {flux: string}> {
  const {plan, flux} = planInfluxQuery(request, settings.bucket, options.now ?? Date.now())
  const rows = await queryInflux(settings, flux)
  const warnings: string[] = []
  const truncated = rows.length > MAX_POINTS
  if (truncated) warnings.push(`only the first ${MAX_POINTS} points are shown: narrow --since/--until or use a coarser --every`)
  const points = rows.slice(0, MAX_POINTS).map((r): QueryPoint => ({ts: new Date(String(r._time)).toISOString(), value: Number(r._value),
    ...(plan.every === null ? {} : {count: Number(r.count)})}))
  const result: QueryResult = {device: (plan.target as {device: string}).device, selector: null, metric: plan.metric, agg: plan.every === null ? null : plan.agg,
    every: describeEvery(plan.every), source: `influx:${bucketOf(settings.bucket, plan.source)}`, from: iso(plan.from), until: iso(plan.until), points, truncated}
  return {result, warnings, flux}
}
