import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {renderResult} from '../../src/lib/cli/output.js'
import {queryView} from '../../src/lib/cli/views/telemetry.js'
import {withTransaction} from '../../src/lib/db/pool.js'
import type {TelemetryPoint} from '../../src/lib/telemetry/payload.js'
import {planQuery, type Aggregate, type QueryRequest} from '../../src/lib/telemetry/query-plan.js'
import {queryTelemetry, querySql} from '../../src/lib/telemetry/query.js'
import {writeTelemetry} from '../../src/lib/telemetry/store.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'

const MIN = 60_000
const H = 60 * MIN
const D = 24 * H
const T0 = Date.UTC(2026, 10, 20) // 2026-11-20T00:00Z
const NOW = Date.UTC(2026, 10, 22, 12)
const iso = (ms: number) => new Date(ms).toISOString()

interface Series {device: string; metric: string; stepMs: number; value: (i: number) => number}
// Integer values: sums are exact in floating point whatever the order of addition, so raw and
// rollups must agree to the last bit. Different sampling rates make avg-of-avgs visibly wrong.
const SERIES: Series[] = [
  {device: 'dev-berlin-1', metric: 'temperature', stepMs: 15_000, value: (i) => (i * 7) % 13},
  {device: 'dev-berlin-2', metric: 'temperature', stepMs: 60_000, value: (i) => 100 + (i % 5)},
  {device: 'dev-paris-1', metric: 'temperature', stepMs: 60_000, value: () => 1000},
  {device: 'dev-berlin-1', metric: 'humidity', stepMs: 60_000, value: (i) => 50 + (i % 3)},
]
const SPAN = 2 * D

function points(s: Series): TelemetryPoint[] {
  return Array.from({length: SPAN / s.stepMs}, (_, i) => ({device_id: s.device, metric: s.metric, ts: iso(T0 + i * s.stepMs), value: s.value(i), seq: i}))
}

/** What the answer must be, computed here from the generated points. */
function expected(series: Series[], every: number, agg: Aggregate, from = T0, until = T0 + SPAN) {
  const buckets = new Map<number, {n: number; sum: number; min: number; max: number; devices: Set<string>}>()
  for (const p of series.flatMap(points)) {
    const ts = Date.parse(p.ts)
    if (ts < from || ts >= until) continue
    const b = Math.floor(ts / every) * every
    const acc = buckets.get(b) ?? {n: 0, sum: 0, min: Infinity, max: -Infinity, devices: new Set()}
    acc.n++
    acc.sum += p.value
    acc.min = Math.min(acc.min, p.value)
    acc.max = Math.max(acc.max, p.value)
    acc.devices.add(p.device_id)
    buckets.set(b, acc)
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([b, a]) => ({
    ts: iso(b), count: a.n, devices: a.devices.size,
    value: agg === 'avg' ? a.sum / a.n : agg === 'sum' ? a.sum : agg === 'min' ? a.min : agg === 'max' ? a.max : a.n,
  }))
}

describe('telemetry query against known series', () => {
  let db: TestDatabase
  const request = (r: Partial<QueryRequest>): QueryRequest => ({device: 'dev-berlin-1', metric: 'temperature', since: iso(T0), until: iso(T0 + SPAN), ...r})
  const query = (r: Partial<QueryRequest>) => queryTelemetry(db, request(r), {now: NOW})

  beforeAll(async () => {
    db = await freshDatabase()
    await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) VALUES
      ('dev-berlin-1', 'sensor', '{"site":"berlin"}'), ('dev-berlin-2', 'sensor', '{"site":"berlin"}'),
      ('dev-paris-1', 'sensor', '{"site":"paris"}'), ('dev-quiet', 'sensor', '{"site":"rome"}')`)
    const all = SERIES.flatMap(points)
    for (let i = 0; i < all.length; i += 2000) await withTransaction(db.pool, db.url, (c) => writeTelemetry(c, all.slice(i, i + 2000)))
  })
  afterAll(async () => db?.drop())

  it('writeTelemetry fills day/month partitions of the raw table and both partitioned rollups, nothing in the defaults', async () => {
    const {rows} = await db.pool.query(`SELECT relname FROM pg_class WHERE relname ~ '^telemetry_(1m_|1h_)?p\\d+$' ORDER BY relname`)
    expect(rows.map((r) => r.relname)).toEqual(['telemetry_1h_p202611', 'telemetry_1m_p20261120', 'telemetry_1m_p20261121', 'telemetry_p20261120', 'telemetry_p20261121'])
    const {rows: [counts]} = await db.pool.query(`SELECT (SELECT count(*) FROM telemetry_default) + (SELECT count(*) FROM telemetry_1m_default)
      + (SELECT count(*) FROM telemetry_1h_default) AS defaults, (SELECT sum(count) FROM telemetry_1m) AS m, (SELECT sum(count) FROM telemetry_1h) AS h,
      (SELECT sum(count) FROM telemetry_1d) AS d, (SELECT count(*) FROM telemetry) AS raw`)
    expect(counts).toEqual({defaults: '0', m: '20160', h: '20160', d: '20160', raw: '20160'})
    expect((await db.pool.query('SELECT metric FROM telemetry_metrics ORDER BY 1')).rows.map((r) => r.metric)).toEqual(['humidity', 'temperature'])
  })

  it.each([
    ['1m', MIN, 'telemetry_1m'], ['5m', 5 * MIN, 'telemetry_1m'], ['1h', H, 'telemetry_1h'], ['6h', 6 * H, 'telemetry_1h'],
    ['1d', D, 'telemetry_1d'], ['90s', 90_000, 'telemetry'],
  ])('--every %s: exact averages (buckets of %d ms) from %s', async (every, ms, table) => {
    const {result, warnings} = await query({every})
    expect(result.source).toBe(table)
    expect(result.points).toEqual(expected([SERIES[0]!], ms, 'avg').map(({devices: _d, ...p}) => p))
    expect(warnings).toEqual([])
  })

  it.each(['min', 'max', 'count', 'sum'] as const)('--agg %s per hour', async (agg) => {
    const {result} = await query({every: '1h', agg})
    expect(result.points.map((p) => p.value)).toEqual(expected([SERIES[0]!], H, agg).map((p) => p.value))
  })

  it.each(['1m', '5m', '1h', '6h', '1d'])('--every %s: the rollup gives the same rows as raw points', async (every) => {
    const plan = planQuery(request({every}), NOW)
    expect(plan.source).not.toBe('raw')
    const fromRollup = await db.pool.query(querySql(plan))
    const fromRaw = await db.pool.query(querySql({...plan, source: 'raw', table: 'telemetry'}))
    expect(fromRollup.rows.length).toBeGreaterThan(0)
    expect(fromRollup.rows).toEqual(fromRaw.rows)
  })

  it('a partial range widens to whole buckets, the same from the rollup and from raw points', async () => {
    const {result} = await query({since: iso(T0 + 3 * H + 17 * MIN), until: iso(T0 + 5 * H + 1), every: '1h'})
    expect(result.from).toBe(iso(T0 + 3 * H))
    expect(result.until).toBe(iso(T0 + 6 * H))
    expect(result.points).toEqual(expected([SERIES[0]!], H, 'avg', T0 + 3 * H, T0 + 6 * H).map(({devices: _d, ...p}) => p))
  })

  it('without --every: the raw points of [since, until)', async () => {
    const {result} = await query({since: iso(T0 + MIN), until: iso(T0 + 2 * MIN)})
    expect(result).toMatchObject({source: 'telemetry', agg: null, every: null, from: iso(T0 + MIN), until: iso(T0 + 2 * MIN)})
    expect(result.points).toEqual([4, 5, 6, 7].map((i) => ({ts: iso(T0 + i * 15_000), value: (i * 7) % 13})))
  })

  it('--every finer than the data: one raw point per bucket', async () => {
    const {result} = await query({since: iso(T0), until: iso(T0 + MIN), every: '5s'})
    expect(result.source).toBe('telemetry')
    expect(result.points).toEqual([0, 1, 2, 3].map((i) => ({ts: iso(T0 + i * 15_000), value: (i * 7) % 13, count: 1})))
  })

  it('fleet: --selector aggregates across devices weighted by points (Σsum/Σcount), never avg of avgs', async () => {
    const berlin = [SERIES[0]!, SERIES[1]!]
    const {result} = await queryTelemetry(db, {selector: 'site=berlin', metric: 'temperature', since: iso(T0), until: iso(T0 + SPAN), every: '1h'}, {now: NOW})
    expect(result).toMatchObject({device: null, selector: 'site=berlin', source: 'telemetry_1h'})
    expect(result.points).toEqual(expected(berlin, H, 'avg'))
    expect(result.points.every((p) => p.devices === 2 && p.count === 240 + 60)).toBe(true)
    const perDevice = await Promise.all(['dev-berlin-1', 'dev-berlin-2'].map((device) => query({device, every: '1h'})))
    const avgOfAvgs = (perDevice[0]!.result.points[0]!.value + perDevice[1]!.result.points[0]!.value) / 2
    expect(result.points[0]!.value).not.toBe(avgOfAvgs)
    for (const every of ['5m', '1d', '90s']) {
      const r = await queryTelemetry(db, {selector: 'site=berlin', metric: 'temperature', since: iso(T0), until: iso(T0 + SPAN), every, agg: 'max'}, {now: NOW})
      const ms = every === '5m' ? 5 * MIN : every === '1d' ? D : 90_000
      expect(r.result.points).toEqual(expected(berlin, ms, 'max'))
    }
    const all = await queryTelemetry(db, {selector: 'site in (berlin,paris)', metric: 'temperature', since: iso(T0), until: iso(T0 + SPAN), every: '1d'}, {now: NOW})
    expect(all.result.points).toEqual(expected(SERIES.slice(0, 3), D, 'avg'))
  })

  it('fleet raw points carry the device id', async () => {
    const {result} = await queryTelemetry(db, {selector: 'site=berlin', metric: 'temperature', since: iso(T0), until: iso(T0 + 30_000)}, {now: NOW})
    expect(result.points).toEqual([
      {device_id: 'dev-berlin-1', ts: iso(T0), value: 0}, {device_id: 'dev-berlin-2', ts: iso(T0), value: 100},
      {device_id: 'dev-berlin-1', ts: iso(T0 + 15_000), value: 7}])
  })

  it('-o csv: a header and one quoted-as-needed line per point', async () => {
    const {result} = await query({every: '6h', until: iso(T0 + 12 * H)})
    const csv = await renderResult(result, 'csv', queryView(result), [])
    const lines = expected([SERIES[0]!], 6 * H, 'avg', T0, T0 + 12 * H).map((p) => `${p.ts},${p.value},${p.count}`)
    expect(csv).toBe(['ts,value,count', ...lines, ''].join('\n'))
    const fleet = await queryTelemetry(db, {selector: 'site in (berlin,paris)', metric: 'temperature', since: iso(T0), until: iso(T0 + D), every: '1d'}, {now: NOW})
    expect((await renderResult(fleet.result, 'csv', queryView(fleet.result), [])).split('\n')[0]).toBe('ts,value,count,devices')
    const tricky = await renderResult([{name: 'a,b', note: 'say "hi"', n: 1}, {name: 'line\nbreak', note: '', n: 2}], 'csv', undefined, [])
    expect(tricky).toBe('name,note,n\n"a,b","say ""hi""",1\n"line\nbreak",,2\n')
  })

  it('an unknown device is exit 3 with the nearest known ids', async () => {
    const error = await query({device: 'dev-berln-1'}).catch((e) => e)
    expect(error).toMatchObject({exitCode: 3, code: 'E_DEVICE_NOT_FOUND'})
    expect(error.data.nearest[0]).toBe('dev-berlin-1')
    expect(error.hint).toContain('dev-berlin-1')
    const far = await query({device: 'dev-berlin-9'}).catch((e) => e)
    expect(far.data.nearest.slice(0, 2).sort()).toEqual(['dev-berlin-1', 'dev-berlin-2'])
  })

  it('an unknown metric is exit 3 with the nearest names: the device\'s own, or the fleet\'s', async () => {
    const error = await query({metric: 'temprature'}).catch((e) => e)
    expect(error).toMatchObject({exitCode: 3, code: 'E_METRIC_NOT_FOUND'})
    expect(error.data.nearest).toEqual(['temperature', 'humidity'])
    const other = await query({device: 'dev-berlin-2', metric: 'humidity'}).catch((e) => e)
    expect(other).toMatchObject({exitCode: 3, code: 'E_METRIC_NOT_FOUND', data: {nearest: ['temperature']}})
    const fleet = await queryTelemetry(db, {selector: 'site=berlin', metric: 'humidty', since: '7d', every: '1h'}, {now: NOW}).catch((e) => e)
    expect(fleet).toMatchObject({exitCode: 3, code: 'E_METRIC_NOT_FOUND'})
    expect(fleet.data.nearest[0]).toBe('humidity')
    const silent = await query({device: 'dev-quiet'}).catch((e) => e)
    expect(silent).toMatchObject({exitCode: 3, code: 'E_METRIC_NOT_FOUND'})
    expect(silent.hint).toContain('has not sent any telemetry')
  })

  it('a known device and metric with no points in range is an empty answer (exit 0); an empty selection warns', async () => {
    const {result, warnings} = await query({since: iso(T0 - 7 * D), until: iso(T0 - 6 * D), every: '1h'})
    expect(result.points).toEqual([])
    expect(warnings).toEqual([])
    const none = await queryTelemetry(db, {selector: 'site=nowhere', metric: 'temperature', since: '7d', every: '1h'}, {now: NOW})
    expect(none.warnings).toEqual(['no devices match the selector'])
  })

  it('warns when the range reaches past the source table\'s retention', async () => {
    const {warnings} = await queryTelemetry(db, request({every: '1m', since: iso(T0)}), {now: T0 + 45 * D})
    expect(warnings).toEqual([expect.stringMatching(/telemetry_1m keeps 30d: .*\(use --every 1h/)])
  })

  it('bad input fails before any query: a malformed selector is exit 4', async () => {
    const broken = {pool: {connect: () => Promise.reject(new Error('must not connect'))}, url: 'postgres://nowhere/x'} as never
    await expect(queryTelemetry(broken, {selector: 'site in (berlin', metric: 'temperature', since: '1h'})).rejects.toMatchObject({exitCode: 4})
    await expect(queryTelemetry(broken, {device: 'dev-1', metric: 'temperature', since: 'soon'})).rejects.toMatchObject({exitCode: 4, code: 'E_TIME'})
  })
})

describe('retention: whole partitions only, raw and rollups', () => {
  let db: TestDatabase
  const NOW_R = Date.UTC(2026, 10, 25, 6) // cutoffs: raw 2026-11-18T06Z, 1m 2026-10-26T06Z, 1h 2025-11-25T06Z
  const DAYS = ['2026-11-24', '2026-11-17', '2026-11-05', '2026-10-20', '2025-10-10']
  const point = (day: string, seq = 0): TelemetryPoint => ({device_id: 'ret-1', metric: 'temperature', ts: `${day}T10:00:00.000Z`, value: 20 + seq, seq})
  const write = (pts: TelemetryPoint[]) => withTransaction(db.pool, db.url, (c) => writeTelemetry(c, pts))
  const tables = async () => (await db.pool.query(`SELECT relname FROM pg_class WHERE relname ~ '^telemetry_(1m_|1h_)?(p\\d+|default)$' AND relkind = 'r' ORDER BY relname`)).rows.map((r) => r.relname)
  const count = async (table: string) => Number((await db.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n)

  beforeAll(async () => {
    db = await freshDatabase()
    await db.pool.query("INSERT INTO devices (device_id, device_type) VALUES ('ret-1', 'sensor')")
    await write(DAYS.map((d) => point(d)))
  })
  afterAll(async () => db?.drop())

  it('retention get shows the defaults, the partitions and how many are past retention', async () => {
    const {getRetention} = await import('../../src/lib/telemetry/retention.js')
    const tiers = await getRetention(db, NOW_R)
    expect(tiers.map((t) => [t.tier, t.keep, t.partitions, t.expired])).toEqual([['raw', '7d', 5, 4], ['1m', '30d', 5, 2], ['1h', '365d', 3, 1], ['1d', 'forever', 0, 0]])
    expect(tiers[0]).toMatchObject({table: 'telemetry', partitioned_by: 'day', oldest: '2025-10-10T00:00:00.000Z', keep_seconds: 7 * 86400})
  })

  it('drops exactly the expired partitions (DROP, not DELETE), keeps the rest and the defaults; a second run drops nothing', async () => {
    const {enforceRetention} = await import('../../src/lib/telemetry/retention.js')
    const run = await enforceRetention(db, new Date(NOW_R))
    expect(run.busy).toBe(false)
    expect(run.skipped).toEqual([])
    expect(run.cutoffs).toEqual({raw: '2026-11-18T06:00:00.000Z', '1m': '2026-10-26T06:00:00.000Z', '1h': '2025-11-25T06:00:00.000Z', '1d': null})
    expect(run.dropped.map((d) => `${d.tier}:${d.partition.replace('public.', '')}`).sort()).toEqual([
      '1h:telemetry_1h_p202510', '1m:telemetry_1m_p20251010', '1m:telemetry_1m_p20261020',
      'raw:telemetry_p20251010', 'raw:telemetry_p20261020', 'raw:telemetry_p20261105', 'raw:telemetry_p20261117'].sort())
    expect(run.dropped.find((d) => d.tier === '1h')).toMatchObject({from: '2025-10-01T00:00:00.000Z', to: '2025-11-01T00:00:00.000Z', table: 'telemetry_1h'})
    expect(await tables()).toEqual(['telemetry_1h_default', 'telemetry_1h_p202610', 'telemetry_1h_p202611', 'telemetry_1m_default',
      'telemetry_1m_p20261105', 'telemetry_1m_p20261117', 'telemetry_1m_p20261124', 'telemetry_default', 'telemetry_p20261124'])
    expect([await count('telemetry'), await count('telemetry_1m'), await count('telemetry_1h'), await count('telemetry_1d')]).toEqual([1, 3, 4, 5])
    const again = await enforceRetention(db, NOW_R)
    expect(again.dropped).toEqual([])
    expect(await tables()).toHaveLength(9)
  })

  it('late points for a dropped day get their partition again (not the default one), and the next run drops it', async () => {
    const {enforceRetention} = await import('../../src/lib/telemetry/retention.js')
    await write([point('2026-11-17', 1), point('2026-11-25', 2)])
    expect(await count('telemetry_default')).toBe(0)
    expect(await tables()).toContain('telemetry_p20261117')
    const run = await enforceRetention(db, NOW_R)
    expect(run.dropped.map((d) => d.partition.replace('public.', ''))).toEqual(['telemetry_p20261117'])
    expect(await count('telemetry')).toBe(2)
  })

  it('a concurrent run is reported busy and does nothing', async () => {
    const {enforceRetention} = await import('../../src/lib/telemetry/retention.js')
    const holder = await db.pool.connect()
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [0x10_7c_72])
      expect(await enforceRetention(db, NOW_R + 365 * D)).toMatchObject({busy: true, dropped: []})
    } finally {
      await holder.query('SELECT pg_advisory_unlock($1)', [0x10_7c_72])
      holder.release()
    }
  })

  it('retention set changes only the named tiers; enforcement follows the new policy', async () => {
    const {enforceRetention, getRetention, setRetention} = await import('../../src/lib/telemetry/retention.js')
    const {tiers, warnings} = await setRetention(db, {raw: 14 * D, '1h': null}, NOW_R)
    expect(tiers.map((t) => [t.tier, t.keep])).toEqual([['raw', '14d'], ['1m', '30d'], ['1h', 'forever'], ['1d', 'forever']])
    expect(warnings).toEqual([])
    expect((await setRetention(db, {raw: 60 * D}, NOW_R)).warnings).toEqual([expect.stringContaining('raw is kept longer than 1m')])
    await setRetention(db, {raw: 7 * D}, NOW_R)
    const run = await enforceRetention(db, NOW_R + 40 * D)
    expect(run.dropped.map((d) => d.tier).sort()).toEqual(['1m', '1m', '1m', '1m', 'raw', 'raw'])
    expect(await count('telemetry_1h')).toBe(5) // 1h=forever: nothing dropped
    expect((await getRetention(db, NOW_R + 40 * D)).map((t) => t.expired)).toEqual([0, 0, 0, 0])
    await expect(db.pool.query("UPDATE telemetry_retention SET keep_seconds = 3600 WHERE tier = 'raw'")).rejects.toThrow(/check constraint/)
  })
})

describe('migration 0006 on a database with rollups', () => {
  it('moves existing 1m and 1h rows into day and month partitions and fills the metric catalogue', async () => {
    const {createEmptyDatabase} = await import('../helpers/database.js')
    const {createPool} = await import('../../src/lib/db/pool.js')
    const {loadMigrations, migrate} = await import('../../src/lib/db/migrate.js')
    const empty = await createEmptyDatabase()
    const pool = await createPool(empty.url)
    try {
      const all = await loadMigrations()
      await migrate(pool, empty.url, all.filter((m) => m.version <= 5))
      for (const [table, buckets] of [['telemetry_1m', ['2026-10-31 23:59:00+00', '2026-11-01 00:00:00+00', '2026-11-01 00:01:00+00']],
        ['telemetry_1h', ['2026-10-31 23:00:00+00', '2026-11-01 00:00:00+00']], ['telemetry_1d', ['2026-10-31 00:00:00+00']]] as const) {
        for (const b of buckets) await pool.query(`INSERT INTO ${table} VALUES ('d1', 'rpm', $1, 2, 10, 4, 6)`, [b])
      }
      expect((await migrate(pool, empty.url, all)).applied).toContain(6)
      const {rows} = await pool.query(`SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM telemetry_1m GROUP BY 1
        UNION ALL SELECT tableoid::regclass::text, count(*)::int FROM telemetry_1h GROUP BY 1 ORDER BY 1`)
      expect(rows).toEqual([{part: 'telemetry_1h_p202610', n: 1}, {part: 'telemetry_1h_p202611', n: 1}, {part: 'telemetry_1m_p20261031', n: 1}, {part: 'telemetry_1m_p20261101', n: 2}])
      expect((await pool.query('SELECT * FROM telemetry_1m ORDER BY bucket LIMIT 1')).rows[0]).toMatchObject({device_id: 'd1', metric: 'rpm', count: '2', sum: 10, min: 4, max: 6})
      expect((await pool.query('SELECT metric FROM telemetry_metrics')).rows).toEqual([{metric: 'rpm'}])
      expect((await pool.query("SELECT to_regclass('telemetry_1m_unpartitioned') AS t")).rows[0].t).toBeNull()
    } finally {
      await pool.end()
      await empty.drop()
    }
  })
})
