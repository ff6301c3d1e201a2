import {describe, expect, it} from 'vitest'
import {bucketSpecs, fluxString, planInfluxSetup, queryFlux, rollupTaskFlux, taskName, ROLLUP_TIERS} from '../../src/lib/telemetry/flux.js'
import {planInfluxQuery} from '../../src/lib/telemetry/query-influx.js'
import {planQuery} from '../../src/lib/telemetry/query-plan.js'

const NOW = Date.UTC(2026, 10, 25, 12, 34, 56)

describe('Flux of `telemetry setup influx`', () => {
  it('the 1m task reads raw points and writes count, sum, min, max per metric with tag stat', () => {
    expect(rollupTaskFlux('iot', 'acme', '1m')).toBe(`option task = {name: "iotctl-rollup-iot-1m", every: 1m, offset: 30s}

data = from(bucket: "iot")
    |> range(start: -task.every)
    |> filter(fn: (r) => r._measurement == "telemetry")

data
    |> aggregateWindow(every: 1m, fn: count, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: "count")
    |> to(bucket: "iot_1m", org: "acme")
    |> yield(name: "count")

data
    |> aggregateWindow(every: 1m, fn: sum, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: "sum")
    |> to(bucket: "iot_1m", org: "acme")
    |> yield(name: "sum")

data
    |> aggregateWindow(every: 1m, fn: min, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: "min")
    |> to(bucket: "iot_1m", org: "acme")
    |> yield(name: "min")

data
    |> aggregateWindow(every: 1m, fn: max, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: "max")
    |> to(bucket: "iot_1m", org: "acme")
    |> yield(name: "max")
`)
  })

  it('the 1h task combines the 1m rollup: counts and sums add up, min of mins, max of maxes', () => {
    const flux = rollupTaskFlux('iot', 'acme', '1h')
    expect(flux).toContain('option task = {name: "iotctl-rollup-iot-1h", every: 1h, offset: 30s}')
    expect(flux).toContain('data = from(bucket: "iot_1m")\n    |> range(start: -task.every)\n    |> filter(fn: (r) => r._measurement == "telemetry" and exists r.stat)')
    expect(flux).toContain(`data
    |> filter(fn: (r) => r.stat == "count")
    |> aggregateWindow(every: 1h, fn: sum, timeSrc: "_start", createEmpty: false)
    |> toFloat()
    |> set(key: "stat", value: "count")
    |> to(bucket: "iot_1h", org: "acme")`)
    expect(flux).toContain('r.stat == "min")\n    |> aggregateWindow(every: 1h, fn: min,')
    expect(flux).toContain('r.stat == "max")\n    |> aggregateWindow(every: 1h, fn: max,')
    expect(rollupTaskFlux('iot', 'acme', '1d')).toContain('from(bucket: "iot_1h")')
  })

  it('quotes names safely: backslash, quote and ${ cannot break out of a string', () => {
    expect(fluxString('a"b\\c${d}')).toBe('"a\\"b\\\\c\\${d}"')
    expect(rollupTaskFlux('x"y', 'o', '1m')).toContain('from(bucket: "x\\"y")')
  })

  it('buckets keep PostgreSQL\'s default retention: raw 7d, 1m 30d, 1h 365d, 1d forever', () => {
    expect(bucketSpecs('iot')).toEqual([
      {name: 'iot', everySeconds: 7 * 86_400}, {name: 'iot_1m', everySeconds: 30 * 86_400},
      {name: 'iot_1h', everySeconds: 365 * 86_400}, {name: 'iot_1d', everySeconds: 0},
    ])
  })

  it('is idempotent: a second run against what the first created changes nothing', () => {
    const first = planInfluxSetup('iot', 'acme', {buckets: [], tasks: []})
    expect(first.map((a) => a.kind)).toEqual(['create-bucket', 'create-bucket', 'create-bucket', 'create-bucket', 'create-task', 'create-task', 'create-task'])
    const buckets = bucketSpecs('iot').map((b, i) => ({id: `b${i}`, name: b.name, everySeconds: b.everySeconds}))
    const tasks = ROLLUP_TIERS.map((tier, i) => ({id: `t${i}`, name: taskName('iot', tier), flux: rollupTaskFlux('iot', 'acme', tier), status: 'active'}))
    expect(planInfluxSetup('iot', 'acme', {buckets, tasks})).toEqual([])
  })

  it('updates what drifted: a retention, an edited task, a disabled task', () => {
    const buckets = bucketSpecs('iot').map((b, i) => ({id: `b${i}`, name: b.name, everySeconds: i === 1 ? 3600 : b.everySeconds}))
    const tasks = ROLLUP_TIERS.map((tier, i) => ({id: `t${i}`, name: taskName('iot', tier), flux: i === 0 ? 'edited' : rollupTaskFlux('iot', 'acme', tier),
      status: i === 2 ? 'inactive' : 'active'}))
    expect(planInfluxSetup('iot', 'acme', {buckets, tasks}).map((a) => [a.kind, 'id' in a ? a.id : ''])).toEqual([
      ['update-bucket', 'b1'], ['update-task', 't0'], ['update-task', 't2'],
    ])
  })
})

describe('Flux of `telemetry query` against InfluxDB', () => {
  it('raw points of one device and metric, in time order, limited', () => {
    const plan = planQuery({device: 'dev-1', metric: 'temperature', since: '2026-11-24T00:00:00Z', until: '2026-11-25T00:00:00Z'}, NOW)
    expect(queryFlux(plan, 'iot', 100_001)).toBe(`from(bucket: "iot")
    |> range(start: 2026-11-24T00:00:00.000Z, stop: 2026-11-25T00:00:00.000Z)
    |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "temperature" and r.device == "dev-1")
    |> group()
    |> keep(columns: ["_time", "_value"])
    |> sort(columns: ["_time"])
    |> limit(n: 100001)
`)
  })

  it('avg per 6h from the 1h rollup: Σsum / Σcount, with the count of raw points', () => {
    const plan = planQuery({device: 'dev-1', metric: 'temperature', since: '2026-11-20T01:00:00Z', until: '2026-11-25T00:00:00Z', every: '6h', agg: 'avg'}, NOW)
    expect(queryFlux(plan, 'iot', 11)).toBe(`data = from(bucket: "iot_1h")
    |> range(start: 2026-11-20T00:00:00.000Z, stop: 2026-11-25T00:00:00.000Z)
    |> filter(fn: (r) => r._measurement == "telemetry" and r._field == "temperature" and r.device == "dev-1")

v = data
    |> filter(fn: (r) => r.stat == "sum")
    |> group()
    |> aggregateWindow(every: 6h, fn: sum, timeSrc: "_start", createEmpty: false)
n = data
    |> filter(fn: (r) => r.stat == "count")
    |> group()
    |> aggregateWindow(every: 6h, fn: sum, timeSrc: "_start", createEmpty: false)

join(tables: {v: v, n: n}, on: ["_time"])
    |> map(fn: (r) => ({_time: r._time, _value: r._value_v / r._value_n, count: int(v: r._value_n)}))
    |> sort(columns: ["_time"])
    |> limit(n: 11)
`)
  })

  it('max per 90s comes from raw points (no rollup divides 90s)', () => {
    const plan = planQuery({device: 'dev-1', metric: 'rpm', since: '2026-11-25T12:00:00Z', every: '90s', agg: 'max'}, NOW)
    const flux = queryFlux(plan, 'iot', 10)
    expect(flux).toContain('data = from(bucket: "iot")\n    |> range(start: 2026-11-25T12:00:00.000Z, stop: 2026-11-25T12:36:00.000Z)')
    expect(flux).toContain('v = data\n    |> group()\n    |> aggregateWindow(every: 90s, fn: max, timeSrc: "_start", createEmpty: false)')
    expect(flux).toContain('n = data\n    |> group()\n    |> aggregateWindow(every: 90s, fn: count, timeSrc: "_start", createEmpty: false)')
    expect(flux).toContain('_value: float(v: r._value_v)')
  })

  it('min per 1d reads the 1d rollup\'s min', () => {
    const flux = queryFlux(planQuery({device: 'd', metric: 'm', since: '7d', every: '1d', agg: 'min'}, NOW), 'iot', 10)
    expect(flux).toContain('from(bucket: "iot_1d")')
    expect(flux).toContain('r.stat == "min")\n    |> group()\n    |> aggregateWindow(every: 1d, fn: min,')
  })

  it('a selector is refused with a next step (exit 2), bad input is exit 4 as for PostgreSQL', () => {
    expect(() => planInfluxQuery({selector: 'site=berlin', metric: 'm', since: '1h'}, 'iot', NOW)).toThrow(expect.objectContaining({code: 'E_INFLUX_SELECTOR', exitCode: 2}))
    expect(() => planInfluxQuery({device: 'd', metric: 'bad metric', since: '1h'}, 'iot', NOW)).toThrow(expect.objectContaining({exitCode: 4}))
  })
})
