import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {withTransaction} from '../../src/lib/db/pool.js'
import type {TelemetryPoint} from '../../src/lib/telemetry/payload.js'
import {writeTelemetry} from '../../src/lib/telemetry/store.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import type {CliResult} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, mapLimit, type Cli} from '../helpers/e2e-expect.js'

const H = 3_600_000
const T0 = Date.UTC(2026, 10, 20) // 2026-11-20T00:00Z
const iso = (ms: number) => new Date(ms).toISOString()
const RANGE = ['--since', iso(T0), '--until', iso(T0 + 6 * H)]
// dev-1: a point a minute for 6 hours, value = the hour × 10 + (minute mod 3): the hourly average is hour × 10 + 1.
const series = (device: string, offset: number): TelemetryPoint[] => Array.from({length: 6 * 60}, (_, i) => ({
  device_id: device, metric: 'temperature', ts: iso(T0 + i * 60_000), value: offset + Math.floor(i / 60) * 10 + (i % 3), seq: i}))

describe('iotctl telemetry query', () => {
  let db: TestDatabase
  let cli: Cli
  const query = (args: string[]) => cli(['telemetry', 'query', ...args])

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) VALUES
      ('dev-1', 'sensor', '{"site":"berlin"}'), ('dev-2', 'sensor', '{"site":"berlin"}'), ('dev-10', 'sensor', '{"site":"paris"}')`)
    const recent = Math.floor(Date.now() / H) * H - 3 * H
    const points = [...series('dev-1', 0), ...series('dev-2', 100),
      ...[0, 1, 2].map((i) => ({device_id: 'dev-10', metric: 'humidity', ts: iso(recent + i * H), value: 40 + i, seq: i}))]
    await withTransaction(db.pool, db.url, (c) => writeTelemetry(c, points))
  })
  afterAll(async () => db?.drop())

  it('-o json: hourly averages from the 1h rollup, with the range and the source', async () => {
    const result = expectOk(await query(['--device', 'dev-1', '--metric', 'temperature', ...RANGE, '--every', '1h', '-o', 'json']))
    expect(result).toMatchObject({device: 'dev-1', metric: 'temperature', agg: 'avg', every: '1h', source: 'telemetry_1h', from: iso(T0), until: iso(T0 + 6 * H), truncated: false})
    expect(result.points).toEqual([0, 1, 2, 3, 4, 5].map((h) => ({ts: iso(T0 + h * H), value: h * 10 + 1, count: 60})))
  })

  it('-o csv: header and rows, nothing on stderr; the table has the same columns', async () => {
    const [csv, table] = <[CliResult, CliResult]> await mapLimit([['-o', 'csv'], []], 2, (extra) => query(['--device', 'dev-1', '--metric', 'temperature', ...RANGE, '--every', '2h', '--agg', 'max', ...extra]))
    expect(csv.code, describeRun(csv)).toBe(0)
    expect(csv.stdout).toBe(`ts,value,count\n${iso(T0)},12,120\n${iso(T0 + 2 * H)},32,120\n${iso(T0 + 4 * H)},52,120\n`)
    expect(csv.stderr).toBe('')
    const lines = table.stdout.trimEnd().split('\n')
    expect(lines[0]!.split(/\s+/)).toEqual(['TS', 'VALUE', 'COUNT'])
    expect(lines[1]).toMatch(/^2026-11-20T00:00:00\.000Z\s+12\s+120$/)
  })

  it('--plot draws a chart with the metric, min/max labels and the time range; -o json ignores it', async () => {
    const [plot, json] = <[CliResult, CliResult]> await mapLimit([[], ['-o', 'json']], 2, (extra) => query(['--device', 'dev-1', '--metric', 'temperature', ...RANGE, '--every', '1h', '--plot', ...extra]))
    expect(plot.code, describeRun(plot)).toBe(0)
    const lines = plot.stdout.split('\n')
    expect(lines[0]).toBe('temperature · avg per 1h · dev-1 · min 1 · max 51')
    expect(lines[1]).toMatch(/^ 51[┼┤] +╭─+$/) // the y axis: the top label is the maximum…
    expect(lines[11]).toMatch(/^  1[┼┤]─+╯ +$|^  1[┼┤]─+╯$/) // …the bottom one the minimum
    expect(lines.slice(1, 12).every((l) => /^ *\d+[┼┤]/.test(l))).toBe(true)
    expect(lines[12]).toMatch(new RegExp(`^   ${iso(T0)} +${iso(T0 + 5 * H)}$`))
    expect(lines[13]).toBe(`from ${iso(T0)} to ${iso(T0 + 6 * H)} · 6 points from telemetry_1h`)
    expect(plot.stderr).toBe('')
    expect(json.json().result.points).toHaveLength(6)
  })

  it('fleet: --selector with a duration --since; raw points without --every', async () => {
    const fleet = expectOk(await query(['--selector', 'site=berlin', '--metric', 'temperature', ...RANGE, '--every', '1h', '--json']))
    expect(fleet.points[0]).toEqual({ts: iso(T0), value: 51, count: 120, devices: 2})
    const recent = expectOk(await query(['--device', 'dev-10', '--metric', 'humidity', '--since', '7d', '-o', 'json']))
    expect(recent).toMatchObject({source: 'telemetry', every: null, agg: null})
    expect(recent.points.map((p: {value: number}) => p.value)).toEqual([40, 41, 42])
  })

  it('an unknown device is exit 3 naming the nearest ids; an unknown metric names the nearest metrics', async () => {
    const [device, metric, plain] = <[CliResult, CliResult, CliResult]> await mapLimit([
      ['--device', 'dev-3', '--metric', 'temperature', '--since', '1d', '--json'],
      ['--device', 'dev-1', '--metric', 'temprature', '--since', '1d', '--json'],
      ['--device', 'dev-11', '--metric', 'humidity', '--since', '1d'],
    ], 2, query)
    const e1 = expectJsonError(device, 3, 'E_DEVICE_NOT_FOUND')
    expect(e1.data?.nearest).toEqual(['dev-1', 'dev-2', 'dev-10'])
    expect(e1.hint).toMatch(/did you mean dev-1, dev-2, dev-10\?/)
    const e2 = expectJsonError(metric, 3, 'E_METRIC_NOT_FOUND')
    expect(e2.hint).toContain('did you mean temperature?')
    expectPlainError(plain, 3)
    expect(plain.stderr).toMatch(/^Error: device "dev-11" not found\nNext: did you mean dev-1, dev-10/)
  })

  it.each([
    [['--since', 'yesterday'], 'E_TIME'],
    [['--since', '2026-11-24'], 'E_TIME'],
    [['--since', '1h', '--until', '2h'], 'E_TIME_RANGE'],
    [['--since', '1d', '--every', '2d'], 'E_EVERY'],
    [['--since', '1d', '--every', 'hourly'], 'E_EVERY'],
  ])('%j is exit 4 (%s)', async (args, code) => {
    expectJsonError(await query(['--device', 'dev-1', '--metric', 'temperature', ...args, '--json']), 4, code)
  })

  it('usage: --device or --selector, not both, not neither (exit 2); bad input is exit 4 even without a database', async () => {
    const [neither, both, offline] = <[CliResult, CliResult, CliResult]> await mapLimit([
      ['--metric', 'temperature', '--since', '1d'],
      ['--device', 'dev-1', '--selector', 'site=berlin', '--metric', 'temperature', '--since', '1d'],
      ['--device', 'dev-1', '--metric', 'temperature', '--since', 'soon', '--database-url', 'postgres://127.0.0.1:1/none'],
    ], 2, query)
    expectPlainError(neither, 2)
    expect(both.code, describeRun(both)).toBe(2)
    expectPlainError(offline, 4)
  })
})

describe('iotctl telemetry retention', () => {
  let db: TestDatabase
  let cli: Cli
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
  })
  afterAll(async () => db?.drop())

  it('get shows the defaults; set changes the named tiers; bad values are exit 4 and change nothing', async () => {
    const table = await cli(['telemetry', 'retention', 'get'])
    expect(table.code, describeRun(table)).toBe(0)
    expect(table.stdout.split('\n')[0]!.split(/\s+/)).toEqual(['TIER', 'TABLE', 'KEEP', 'PARTITIONED_BY', 'PARTITIONS', 'OLDEST', 'EXPIRED'])
    expect(table.stdout).toMatch(/^raw\s+telemetry\s+7d\s+day\s+0\s+-\s+0$/m)
    expect(table.stdout).toMatch(/^1d\s+telemetry_1d\s+forever\s+-\s+0\s+-\s+0$/m)
    const set = expectOk(await cli(['telemetry', 'retention', 'set', 'raw=14d', '1h=forever', '-o', 'json']))
    expect(set.map((t: {tier: string; keep: string}) => `${t.tier}=${t.keep}`)).toEqual(['raw=14d', '1m=30d', '1h=forever', '1d=forever'])
    for (const [args, exit] of [[['raw=1h'], 4], [['1d=30d'], 4], [['weekly=7d'], 4], [[], 2]] as const) {
      const r = await cli(['telemetry', 'retention', 'set', ...args])
      expectPlainError(r, exit)
    }
    const csv = await cli(['telemetry', 'retention', 'get', '-o', 'csv'])
    expect(csv.stdout.split('\n').slice(0, 2)).toEqual(['tier,table,keep,partitioned_by,partitions,oldest,expired', 'raw,telemetry,14d,day,0,-,0'])
  })
})
