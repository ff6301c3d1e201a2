import type {PoolClient} from '../db/pool.js'
import type {TelemetryPoint} from './payload.js'

const dayKey = (iso: string) => iso.slice(0, 10) // YYYY-MM-DD (UTC)
const knownPartitions = new Set<string>()

/**
 * Daily partitions, created before a batch needs them, under an advisory lock so that several
 * ingest workers never race on CREATE TABLE. A day whose rows already sit in the default partition
 * cannot get its own partition; those rows simply stay in the default one.
 */
async function ensurePartitions(client: PoolClient, points: TelemetryPoint[]): Promise<void> {
  const c = client as unknown as {host?: string; port?: number; database?: string}
  const db = `${c.host}:${c.port}/${c.database}`
  const days = [...new Set(points.map((p) => dayKey(p.ts)))].filter((d) => !knownPartitions.has(`${db}/${d}`))
  for (const day of days) {
    const name = `telemetry_p${day.replace(/-/g, '')}`
    const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10)
    await client.query('SAVEPOINT partition')
    try {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [name])
      await client.query(`CREATE TABLE IF NOT EXISTS ${name} PARTITION OF telemetry FOR VALUES FROM ('${day}') TO ('${next}')`)
      await client.query('RELEASE SAVEPOINT partition')
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT partition') // rows for that day are in the default partition
    }
    knownPartitions.add(`${db}/${day}`)
  }
}

const ROLLUP = (table: string, unit: string) => `${table} AS (
    INSERT INTO telemetry_${table.slice(2)} AS r (device_id, metric, bucket, count, sum, min, max)
    SELECT device_id, metric, date_trunc('${unit}', ts), count(*), sum(value), min(value), max(value)
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
    seen AS (
      UPDATE devices d SET last_seen_at = greatest(d.last_seen_at, s.ts)
      FROM (SELECT device_id, max(ts) AS ts FROM inserted GROUP BY 1) s WHERE d.device_id = s.device_id RETURNING 1)
    SELECT count(*) AS inserted FROM inserted`, [JSON.stringify(points)])
  return Number(rows[0]!.inserted)
}
