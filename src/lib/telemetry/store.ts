import type {PoolClient} from '../db/pool.js'
import type {TelemetryPoint} from './payload.js'

const dayKey = (iso: string) => iso.slice(0, 10) // YYYY-MM-DD (UTC)
const knownPartitions = new Set<string>()

interface PartitionSpec {
  parent: string
  name: string
  from: string
  to: string
}

const utc = (date: string) => `${date} 00:00:00+00`
const nextDay = (day: string) => new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
function nextMonth(day: string): string {
  const d = new Date(`${day.slice(0, 7)}-01T00:00:00Z`)
  d.setUTCMonth(d.getUTCMonth() + 1)
  return d.toISOString().slice(0, 10)
}

/** The partitions a day's points go to: raw and 1-minute rollups by day, 1-hour rollups by month (UTC). */
function partitionsFor(day: string): PartitionSpec[] {
  const compact = day.replace(/-/g, '')
  const month = `${day.slice(0, 7)}-01`
  return [
    {parent: 'telemetry', name: `telemetry_p${compact}`, from: utc(day), to: utc(nextDay(day))},
    {parent: 'telemetry_1m', name: `telemetry_1m_p${compact}`, from: utc(day), to: utc(nextDay(day))},
    {parent: 'telemetry_1h', name: `telemetry_1h_p${compact.slice(0, 6)}`, from: utc(month), to: utc(nextMonth(day))},
  ]
}

/** Forget which partitions exist (after retention dropped some): the next batch re-checks with CREATE IF NOT EXISTS. */
export function forgetPartitions(): void {
  knownPartitions.clear()
}

/**
 * Partitions, created before a batch needs them, under an advisory lock so that several ingest
 * workers never race on CREATE TABLE. A range whose rows already sit in a default partition
 * cannot get its own partition; those rows simply stay in the default one.
 */
async function ensurePartitions(client: PoolClient, points: TelemetryPoint[]): Promise<void> {
  const c = client as unknown as {host?: string; port?: number; database?: string}
  const db = `${c.host}:${c.port}/${c.database}`
  const specs = [...new Set(points.map((p) => dayKey(p.ts)))].flatMap(partitionsFor)
  for (const spec of specs) {
    const key = `${db}/${spec.name}`
    if (knownPartitions.has(key)) continue
    await client.query('SAVEPOINT partition')
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [spec.name])
      await client.query(`CREATE TABLE IF NOT EXISTS ${spec.name} PARTITION OF ${spec.parent} FOR VALUES FROM ('${spec.from}') TO ('${spec.to}')`)
      await client.query('RELEASE SAVEPOINT partition')
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT partition') // rows for that range are in the default partition
    }
    knownPartitions.add(key)
  }
}

const ROLLUP = (table: string, unit: string) => `${table} AS (
    INSERT INTO telemetry_${table.slice(2)} AS r (device_id, metric, bucket, count, sum, min, max)
    SELECT device_id, metric, date_trunc('${unit}', ts, 'UTC'), count(*), sum(value), min(value), max(value)
    FROM inserted GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET count = r.count + EXCLUDED.count,
      sum = r.sum + EXCLUDED.sum, min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max)
    RETURNING 1)`

/**
 * Write a batch in the caller's transaction: raw points with ON CONFLICT DO NOTHING, and the three
 * rollups from the RETURNING rows only, in one statement, so a redelivered message (same device,
 * metric, timestamp) is neither stored nor counted twice. Returns the number of new points.
 */
export async function writeTelemetry(client: PoolClient, points: TelemetryPoint[]): Promise<number> {
  if (points.length === 0) return 0
  await ensurePartitions(client, points)
  const {rows} = await client.query<{inserted: string}>(`WITH inserted AS (
      INSERT INTO telemetry (device_id, metric, ts, value, seq)
      SELECT device_id, metric, ts, value, seq FROM jsonb_to_recordset($1::jsonb)
        AS p(device_id text, metric text, ts timestamptz, value double precision, seq bigint)
      ON CONFLICT DO NOTHING
      RETURNING device_id, metric, ts, value),
    ${ROLLUP('r_1m', 'minute')}, ${ROLLUP('r_1h', 'hour')}, ${ROLLUP('r_1d', 'day')},
    metrics AS (INSERT INTO telemetry_metrics (metric) SELECT DISTINCT metric FROM inserted ON CONFLICT DO NOTHING RETURNING 1),
    seen AS (
      UPDATE devices d SET last_seen_at = greatest(d.last_seen_at, s.ts)
      FROM (SELECT device_id, max(ts) AS ts FROM inserted GROUP BY 1) s WHERE d.device_id = s.device_id RETURNING 1)
    SELECT count(*) AS inserted FROM inserted`, [JSON.stringify(points)])
  return Number(rows[0]!.inserted)
}
