import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseTelemetry, type TelemetryPoint} from '../../src/lib/telemetry/payload.js'
import {createPostgresSink} from '../../src/lib/telemetry/sinks/postgres.js'
import {createInfluxSink} from '../../src/lib/telemetry/sinks/influx.js'
import type {TelemetrySink} from '../../src/lib/telemetry/sinks/types.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {registerDevices} from '../helpers/pki-fixtures.js'
import {startVictoriaMetrics, type RunningVictoriaMetrics} from '../helpers/victoria-metrics.js'

/** What both sinks must return for the same input: device, metric, millisecond time, value. */
interface Stored {
  device: string
  metric: string
  ms: number
  value: number
}

const byKey = (a: Stored, b: Stored) => a.device.localeCompare(b.device) || a.metric.localeCompare(b.metric) || a.ms - b.ms

const T0 = Date.UTC(2026, 10, 24, 23, 59, 58, 123) // across midnight UTC: two daily partitions in PostgreSQL
const messages: Array<[string, object]> = [
  ['sink-a', {ts: T0, seq: 1, metrics: {temperature: 21.5, humidity: 40}}],
  ['sink-a', {ts: T0 + 1, seq: 2, metrics: {temperature: -273.15, humidity: 0}}], // 1 ms later: a distinct point
  ['sink-a', {ts: new Date(T0 + 2500).toISOString(), seq: 3, metrics: {temperature: 0.001, 'co2.ppm': 415.25}}],
  // RFC 3339 with nanoseconds: both stores keep the millisecond (InfluxDB would keep all 9 digits).
  ['sink-a', {ts: '2026-11-25T00:00:01.123456789Z', seq: 4, metrics: {temperature: 19.75}}],
  ['sink-b', {ts: T0, seq: 1, metrics: {temperature: 123456.789, voltage_mv: Number.MAX_SAFE_INTEGER}}],
  ['sink-b', {ts: T0 + 60_000, seq: 2, metrics: {temperature: -40.125, 'x-y': 1e-6}}],
]
// Values are sensor-like on purpose: VictoriaMetrics keeps ~12 significant digits (see its helper).
const input: TelemetryPoint[] = messages.flatMap(([device, body]) => {
  const parsed = parseTelemetry(device, Buffer.from(JSON.stringify(body)), T0 + 3_600_000)
  if (!parsed.ok) throw new Error(parsed.reason)
  return parsed.points
})
const expected: Stored[] = input.map((p) => ({device: p.device_id, metric: p.metric, ms: Date.parse(p.ts), value: p.value})).sort(byKey)

interface Backend {
  sink: TelemetrySink
  read(): Promise<Stored[]>
}

/**
 * One contract, run against every sink (DESIGN.md §5): the same input gives the same stored
 * points, a redelivered batch stores nothing twice, an empty batch is a no-op.
 */
function sinkContract(name: string, open: () => Promise<Backend>) {
  describe(`telemetry sink contract: ${name}`, () => {
    let backend: Backend
    beforeAll(async () => {
      backend = await open()
    })

    it('an empty batch stores nothing', async () => {
      expect(await backend.sink.write([])).toBe(0)
      expect(await backend.read()).toEqual([])
    })

    it('stores exactly the points given: values bit-exact, times to the millisecond', async () => {
      expect(await backend.sink.write(input)).toBe(input.length)
      const stored = await backend.read()
      expect(stored).toEqual(expected)
      for (const [i, s] of stored.entries()) expect(Object.is(s.value, expected[i]!.value), `${s.metric} ${s.value}`).toBe(true)
    })

    it('a redelivered batch (a lost PUBACK) stores nothing twice', async () => {
      await backend.sink.write(input)
      await backend.sink.write(input.slice(2, 5))
      expect(await backend.read()).toEqual(expected)
    })
  })
}

let db: TestDatabase
let vm: RunningVictoriaMetrics

beforeAll(async () => {
  db = await freshDatabase()
  await registerDevices(db, ['sink-a', 'sink-b'])
  // A label with a comma and a space: escaped in the line protocol, intact in the store.
  await db.pool.query(`UPDATE devices SET labels = '{"site": "berlin, 3rd floor", "tier": "prod"}' WHERE device_id = 'sink-a'`)
  vm = await startVictoriaMetrics()
})

afterAll(async () => {
  await vm?.close()
  await db?.drop()
})

sinkContract('postgres', async () => ({
  sink: createPostgresSink(db),
  read: async () => {
    const {rows} = await db.pool.query<{device_id: string; metric: string; ts: Date; value: number}>('SELECT device_id, metric, ts, value FROM telemetry')
    return rows.map((r) => ({device: r.device_id, metric: r.metric, ms: r.ts.getTime(), value: r.value})).sort(byKey)
  },
}))

sinkContract('influx (VictoriaMetrics /api/v2/write)', async () => ({
  sink: await createInfluxSink({url: vm.url, token: 'unused-by-vm', org: 'acme', bucket: 'iot', labels: ['site']}, {db}),
  read: async () => (await vm.exportSeries()).flatMap((s) => s.timestamps.map((ms, i) => ({
    device: s.metric.device!, metric: s.metric.__name__!.replace(/^telemetry_/, ''), ms, value: s.values[i]!,
  }))).sort(byKey),
}))

describe('influx sink: what only InfluxDB stores', () => {
  it('tags each series with device, type and the chosen labels (escaped), nothing else', async () => {
    const series = await vm.exportSeries('{__name__="telemetry_temperature"}')
    expect(series.map((s) => s.metric)).toEqual([
      {__name__: 'telemetry_temperature', device: 'sink-a', type: 'thermostat', site: 'berlin, 3rd floor'},
      {__name__: 'telemetry_temperature', device: 'sink-b', type: 'thermostat'},
    ])
  })
})
