import type {Database, PoolClient} from '../db/pool.js'
import {notFound} from '../core/errors.js'
import {connectClient, databaseUnavailable, isConnectionError} from '../db/pool.js'
import {deviceSelectionSql} from '../registry/index.js'
import {describeEvery, planQuery, TIER_TABLE, type Aggregate, type QueryPlan, type QueryRequest, type Tier} from './query-plan.js'
import {deviceCandidates, deviceMetrics, knownMetrics, nearestNames} from './suggest.js'
import {formatDuration, iso} from './time.js'

export const MAX_POINTS = 100_000

export interface QueryPoint {
  /** Raw: the point's time. Buckets: the bucket's start. */
  ts: string
  value: number
  /** Buckets: raw points in the bucket. */
  count?: number
  /** Fleet buckets: devices that reported in the bucket. */
  devices?: number
  /** Fleet raw points: whose point. */
  device_id?: string
}

export interface QueryResult {
  device: string | null
  selector: string | null
  metric: string
  /** null for raw points. */
  agg: Aggregate | null
  every: string | null
  /** The table read: telemetry, telemetry_1m, telemetry_1h or telemetry_1d. */
  source: string
  from: string
  until: string
  points: QueryPoint[]
  truncated: boolean
}

export interface TelemetryQuery {
  result: QueryResult
  warnings: string[]
}

interface BucketRow {ts: Date; n: string; sum: number; min: number; max: number; devices?: string}
interface RawRow {ts: Date; value: number; device_id?: string}

function targetCondition(plan: QueryPlan, params: unknown[]): string {
  if (plan.target.kind === 'device') {
    params.push(plan.target.device)
    return `device_id = $${params.length}`
  }
  return `device_id IN (SELECT device_id FROM devices WHERE ${deviceSelectionSql({selector: plan.target.selector}, params)})`
}

/** The one statement a plan runs; exported for EXPLAIN in tests and the benchmark. */
export function querySql(plan: QueryPlan, limit = MAX_POINTS + 1): {text: string; values: unknown[]} {
  const params: unknown[] = []
  const where = targetCondition(plan, params)
  params.push(plan.metric, iso(plan.from), iso(plan.until))
  const [m, from, until] = [params.length - 2, params.length - 1, params.length]
  const fleet = plan.target.kind === 'fleet'
  if (plan.every === null) {
    params.push(limit)
    return {values: params, text: `SELECT ${fleet ? 'device_id, ' : ''}ts, value FROM telemetry
      WHERE ${where} AND metric = $${m} AND ts >= $${from} AND ts < $${until} ORDER BY ts${fleet ? ', device_id' : ''} LIMIT $${params.length}`}
  }
  const col = plan.source === 'raw' ? 'ts' : 'bucket'
  const stats = plan.source === 'raw'
    ? 'count(*) AS n, sum(value) AS sum, min(value) AS min, max(value) AS max'
    : 'sum(count) AS n, sum(sum) AS sum, min(min) AS min, max(max) AS max'
  params.push(`${plan.every / 1000} seconds`, limit)
  return {values: params, text: `SELECT date_bin($${params.length - 1}::interval, ${col}, TIMESTAMPTZ '1970-01-01 00:00:00+00') AS ts, ${stats}${fleet ? ', count(DISTINCT device_id) AS devices' : ''}
      FROM ${plan.table} WHERE ${where} AND metric = $${m} AND ${col} >= $${from} AND ${col} < $${until}
      GROUP BY 1 ORDER BY 1 LIMIT $${params.length}`}
}

function value(row: BucketRow, agg: Aggregate): number {
  switch (agg) {
    case 'avg': return row.sum / Number(row.n)
    case 'sum': return row.sum
    case 'min': return row.min
    case 'max': return row.max
    case 'count': return Number(row.n)
  }
}

/** Why a query came back empty: an unknown device or metric is exit 3 with the nearest known names. */
async function diagnoseEmpty(client: PoolClient, plan: QueryPlan, warnings: string[]): Promise<void> {
  if (plan.target.kind === 'device') {
    const device = plan.target.device
    const {rows} = await client.query<{known: boolean}>(`SELECT EXISTS (SELECT 1 FROM devices WHERE device_id = $1)
      OR EXISTS (SELECT 1 FROM telemetry_1d WHERE device_id = $1) AS known`, [device])
    if (!rows[0]!.known) {
      const near = await nearestNames(device, await deviceCandidates(client, device))
      throw notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(device)} not found`, {
        hint: near.length > 0 ? `did you mean ${near.join(', ')}? (list devices with \`iotctl devices list\`)` : 'no devices are registered yet: `iotctl devices register`',
        data: {nearest: near},
      })
    }
    const metrics = await deviceMetrics(client, device)
    if (!metrics.includes(plan.metric)) {
      const near = await nearestNames(plan.metric, metrics)
      throw notFound('E_METRIC_NOT_FOUND', `device ${JSON.stringify(device)} has no metric ${JSON.stringify(plan.metric)}`, {
        hint: near.length > 0 ? `did you mean ${near.join(', ')}? (metrics of ${device}, nearest first)` : `${device} has not sent any telemetry yet`,
        data: {nearest: near},
      })
    }
    return
  }
  const metrics = await knownMetrics(client)
  if (!metrics.includes(plan.metric)) {
    const near = await nearestNames(plan.metric, metrics)
    throw notFound('E_METRIC_NOT_FOUND', `no device has reported metric ${JSON.stringify(plan.metric)}`, {
      hint: near.length > 0 ? `did you mean ${near.join(', ')}? (known metrics, nearest first)` : 'no telemetry has been stored yet',
      data: {nearest: near},
    })
  }
  const params: unknown[] = []
  const sql = `SELECT EXISTS (SELECT 1 FROM devices WHERE ${deviceSelectionSql({selector: (plan.target as {selector: string}).selector}, params)}) AS any`
  if (!(await client.query<{any: boolean}>(sql, params)).rows[0]!.any) warnings.push('no devices match the selector')
}

/** A range older than the source's retention can only be partly there: say so, and what to use instead. */
async function retentionWarning(client: PoolClient, plan: QueryPlan, now: number): Promise<string | undefined> {
  if (plan.source === '1d') return undefined
  const {rows} = await client.query<{keep_seconds: string | null}>('SELECT keep_seconds FROM telemetry_retention WHERE tier = $1', [plan.source])
  const keep = rows[0]?.keep_seconds
  if (keep === null || keep === undefined || plan.from >= now - Number(keep) * 1000) return undefined
  const coarser: Record<Tier, string> = {raw: '1m', '1m': '1h', '1h': '1d', '1d': '1d'}
  return `${TIER_TABLE[plan.source]} keeps ${formatDuration(Number(keep) * 1000)}: points before ${iso(now - Number(keep) * 1000)} may be gone ` +
    `(use --every ${coarser[plan.source]} or coarser for older data)`
}

/**
 * `telemetry query`: raw points or buckets from the rollup that matches --every, for one device or a
 * fleet. The request is validated and compiled before `db` is opened (pass a function to open it
 * lazily), so bad input is exit 4 even when the database is down.
 */
export async function queryTelemetry(database: Database | (() => Promise<Database>), request: QueryRequest, options: {now?: number} = {}): Promise<TelemetryQuery> {
  const now = options.now ?? Date.now()
  const plan = planQuery(request, now)
  const q = querySql(plan)
  const warnings: string[] = []
  const db = typeof database === 'function' ? await database() : database
  const client = await connectClient(db.pool, db.url)
  try {
    const {rows} = await client.query<BucketRow & RawRow>(q.text, q.values)
    const truncated = rows.length > MAX_POINTS
    const points = rows.slice(0, MAX_POINTS).map((row): QueryPoint => {
      if (plan.every === null) return {...(row.device_id === undefined ? {} : {device_id: row.device_id}), ts: row.ts.toISOString(), value: row.value}
      const point: QueryPoint = {ts: row.ts.toISOString(), value: value(row, plan.agg), count: Number(row.n)}
      if (row.devices !== undefined) point.devices = Number(row.devices)
      return point
    })
    if (points.length === 0) await diagnoseEmpty(client, plan, warnings)
    if (truncated) warnings.push(`only the first ${MAX_POINTS} points are shown: narrow --since/--until or use a coarser --every`)
    const retention = await retentionWarning(client, plan, now)
    if (retention) warnings.push(retention)
    const result: QueryResult = {
      device: plan.target.kind === 'device' ? plan.target.device : null,
      selector: plan.target.kind === 'fleet' ? plan.target.selector : null,
      metric: plan.metric, agg: plan.every === null ? null : plan.agg, every: describeEvery(plan.every), source: plan.table,
      from: iso(plan.from), until: iso(plan.until), points, truncated,
    }
    return {result, warnings}
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(db.url, error) : error
  } finally {
    client.release()
  }
}
