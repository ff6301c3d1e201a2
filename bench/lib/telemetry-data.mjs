// Synthetic telemetry for the telemetry benchmark, made inside PostgreSQL: raw points with
// generate_series (in arrival order: time, then device, then metric), rollups with SQL from them
// (1m from raw, 1h from 1m, 1d from 1h: count/sum/min/max combine exactly), partitions named as
// the ingest names them (src/lib/telemetry/store.ts).
import {fmtCount, fmtS, msSince} from './stats.mjs'

export const METRICS = ['temperature', 'humidity']
export const deviceName = (i) => `bench-${String(i).padStart(4, '0')}`
const DAY = 86_400_000
const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10)
const utc = (day) => `${day} 00:00:00+00`

function monthAfter(day) {
  const d = new Date(`${day.slice(0, 7)}-01T00:00:00Z`)
  d.setUTCMonth(d.getUTCMonth() + 1)
  return d.toISOString().slice(0, 10)
}

/** Sizes: `points` raw points over `devices` × 2 metrics every `stepMs`, ending at `end`. */
export function layout({points, devices, stepMs, end}) {
  const perSeries = Math.ceil(points / (devices * METRICS.length))
  const last = Math.floor(end / stepMs) * stepMs
  const first = last - (perSeries - 1) * stepMs
  return {perSeries, first, last, total: perSeries * devices * METRICS.length, spanDays: ((last - first) / DAY).toFixed(1)}
}

async function createPartitions(pool, first, last) {
  const months = new Set()
  for (let t = Math.floor(first / DAY) * DAY; t <= last; t += DAY) {
    const day = dayOf(t)
    const next = dayOf(t + DAY)
    const compact = day.replace(/-/g, '')
    await pool.query(`CREATE TABLE IF NOT EXISTS telemetry_p${compact} PARTITION OF telemetry FOR VALUES FROM ('${utc(day)}') TO ('${utc(next)}')`)
    await pool.query(`CREATE TABLE IF NOT EXISTS telemetry_1m_p${compact} PARTITION OF telemetry_1m FOR VALUES FROM ('${utc(day)}') TO ('${utc(next)}')`)
    months.add(`${day.slice(0, 7)}-01`)
  }
  for (const month of months) {
    await pool.query(`CREATE TABLE IF NOT EXISTS telemetry_1h_p${month.slice(0, 7).replace('-', '')} PARTITION OF telemetry_1h
      FOR VALUES FROM ('${utc(month)}') TO ('${utc(monthAfter(month))}')`)
  }
}

/** Load everything, one day at a time; returns the phase times. */
export async function loadTelemetry(pool, {devices, stepMs, first, last, total}) {
  const times = {}
  let start = process.hrtime.bigint()
  await pool.query(`INSERT INTO devices (device_id, device_type, labels)
    SELECT 'bench-' || lpad(d::text, 4, '0'), 'sensor', jsonb_build_object('site', CASE WHEN d % 2 = 0 THEN 'berlin' ELSE 'paris' END)
    FROM generate_series(0, $1 - 1) d`, [devices])
  await pool.query('INSERT INTO telemetry_metrics (metric) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [METRICS])
  await createPartitions(pool, first, last)
  let done = 0
  for (let dayStart = Math.floor(first / DAY) * DAY; dayStart <= last; dayStart += DAY) {
    const from = Math.max(first, dayStart)
    const to = Math.min(last, dayStart + DAY - stepMs)
    if (to < from) continue
    const {rowCount} = await pool.query(`INSERT INTO telemetry (device_id, metric, ts, value, seq)
      SELECT 'bench-' || lpad(d::text, 4, '0'), m.metric, t,
        round((CASE m.metric WHEN 'temperature' THEN 21 + 4 * sin(extract(epoch FROM t) / 3600.0 + d) ELSE 45 + 10 * cos(extract(epoch FROM t) / 7200.0 + d) END
          + (d % 7))::numeric, 2)::float8,
        (extract(epoch FROM t) / ${stepMs / 1000})::bigint
      FROM generate_series($1::timestamptz, $2::timestamptz, $3::interval) AS t,
        generate_series(0, $4 - 1) AS d, unnest($5::text[]) AS m(metric)
      ORDER BY t, d, m.metric`, [new Date(from).toISOString(), new Date(to).toISOString(), `${stepMs / 1000} seconds`, devices, METRICS])
    done += rowCount
    process.stderr.write(`\r  raw points: ${fmtCount(done)} / ${fmtCount(total)}   `)
  }
  process.stderr.write('\n')
  times.raw = msSince(start)
  start = process.hrtime.bigint()
  for (let dayStart = Math.floor(first / DAY) * DAY; dayStart <= last; dayStart += DAY) {
    await pool.query(`INSERT INTO telemetry_1m (device_id, metric, bucket, count, sum, min, max)
      SELECT device_id, metric, date_trunc('minute', ts, 'UTC'), count(*), sum(value), min(value), max(value)
      FROM telemetry WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3`, [new Date(dayStart).toISOString(), new Date(dayStart + DAY).toISOString()])
  }
  await pool.query(`INSERT INTO telemetry_1h (device_id, metric, bucket, count, sum, min, max)
    SELECT device_id, metric, date_trunc('hour', bucket, 'UTC'), sum(count), sum(sum), min(min), max(max) FROM telemetry_1m GROUP BY 1, 2, 3`)
  await pool.query(`INSERT INTO telemetry_1d (device_id, metric, bucket, count, sum, min, max)
    SELECT device_id, metric, date_trunc('day', bucket, 'UTC'), sum(count), sum(sum), min(min), max(max) FROM telemetry_1h GROUP BY 1, 2, 3`)
  times.rollups = msSince(start)
  start = process.hrtime.bigint()
  await pool.query('VACUUM (ANALYZE) telemetry, telemetry_1m, telemetry_1h, telemetry_1d, devices')
  times.vacuum = msSince(start)
  const {rows: [check]} = await pool.query('SELECT (SELECT count(*) FROM telemetry)::bigint AS raw, (SELECT sum(count) FROM telemetry_1d)::bigint AS rolled')
  if (check.raw !== check.rolled) throw new Error(`rollups count ${check.rolled} points, the raw table holds ${check.raw}`)
  times.rows = Number(check.raw)
  return times
}

/** Rows and bytes (table + indexes, all partitions) of each telemetry table. */
export async function tableSizes(pool) {
  const {rows} = await pool.query(`SELECT t.name, count(p.relid) FILTER (WHERE p.isleaf) AS partitions,
      sum(c.reltuples) FILTER (WHERE p.isleaf)::bigint AS rows, sum(pg_total_relation_size(p.relid))::bigint AS bytes
    FROM unnest(ARRAY['telemetry', 'telemetry_1m', 'telemetry_1h', 'telemetry_1d']) AS t(name)
      CROSS JOIN LATERAL (SELECT relid, isleaf FROM pg_partition_tree(t.name::regclass)
        UNION ALL SELECT t.name::regclass, true WHERE NOT EXISTS (SELECT 1 FROM pg_partition_tree(t.name::regclass))) p
      JOIN pg_class c ON c.oid = p.relid
    GROUP BY t.name ORDER BY bytes DESC`)
  return rows.map((r) => ({name: r.name, partitions: Number(r.partitions), rows: Number(r.rows), bytes: Number(r.bytes)}))
}

export const describeSizes = (sizes) => sizes.map((s) =>
  `${s.name} ${fmtCount(s.rows)} rows, ${(s.bytes / 1024 / 1024).toFixed(0)} MiB${s.partitions > 1 ? ` in ${s.partitions} partitions` : ''}`).join(' · ')

export const loadSummary = (t) => `raw ${fmtS(t.raw)}, rollups ${fmtS(t.rollups)}, VACUUM ANALYZE ${fmtS(t.vacuum)}`
