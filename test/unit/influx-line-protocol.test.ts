import {HttpError, RequestTimedOutError} from '@influxdata/influxdb-client'
import {describe, expect, it} from 'vitest'
import {parseTelemetry, type TelemetryPoint} from '../../src/lib/telemetry/payload.js'
import {classifyInfluxError} from '../../src/lib/telemetry/sinks/influx.js'
import {toLineProtocol} from '../../src/lib/telemetry/sinks/line-protocol.js'
import {parseSinkKinds} from '../../src/lib/telemetry/sinks/types.js'

const NOW = Date.UTC(2026, 10, 25)
function points(device: string, body: object): TelemetryPoint[] {
  const parsed = parseTelemetry(device, Buffer.from(JSON.stringify(body)), NOW)
  if (!parsed.ok) throw new Error(parsed.reason)
  return parsed.points
}

describe('line protocol of the InfluxDB sink', () => {
  it('one line per device and time: measurement telemetry, sorted tags, one float field per metric, ns time', () => {
    const lines = toLineProtocol([...points('d1', {ts: 1795564800123, seq: 1, metrics: {temperature: 21.5, humidity: 40}}),
      ...points('d2', {ts: 1795564800123, seq: 1, metrics: {temperature: -3}})], (d) => (d === 'd1' ? {type: 'thermostat', site: 'berlin'} : undefined))
    expect(lines).toEqual([
      'telemetry,device=d1,site=berlin,type=thermostat temperature=21.5,humidity=40 1795564800123000000',
      'telemetry,device=d2 temperature=-3 1795564800123000000',
    ])
  })

  it.each([
    ['2026-11-24T10:00:00.123456789Z', '1795514400123456789'],
    ['2026-11-24T10:00:00.000000001Z', '1795514400000000001'],
    ['2026-11-24T12:00:00.5+02:00', '1795514400500000000'],
    ['2026-11-24T10:00:00.1234567891Z', '1795514400123456789'], // beyond ns: dropped, never rounded into the next ns
    [1795514400123.25, '1795514400123250000'],
  ])('device timestamp %s is written as exactly %s ns', (ts, ns) => {
    const [line] = toLineProtocol(points('d1', {ts, seq: 1, metrics: {v: 1}}), () => undefined)
    expect(line).toBe(`telemetry,device=d1 v=1 ${ns}`)
  })

  it('PostgreSQL gets the same millisecond, and no ns key when the device sent none finer', () => {
    const [fine] = points('d1', {ts: '2026-11-24T10:00:00.123456789Z', seq: 1, metrics: {v: 1}})
    expect(fine).toMatchObject({ts: '2026-11-24T10:00:00.123Z', ns: '1795514400123456789'})
    const [plain] = points('d1', {ts: '2026-11-24T10:00:00.123000Z', seq: 1, metrics: {v: 1}})
    expect(plain).not.toHaveProperty('ns')
  })

  it('every float64 is written in text that parses back to the same bits', () => {
    const values = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0000123, 123456789.12345679, Number.MAX_SAFE_INTEGER, 1e21, -1e-7]
    const lines = toLineProtocol(values.map((value, i) => ({device_id: 'd', metric: `m${i}`, ts: '2026-11-24T00:00:00.000Z', value, seq: 1})), () => undefined)
    const fields = lines[0]!.split(' ')[1]!.split(',').map((f) => Number(f.split('=')[1]))
    expect(fields).toEqual(values)
  })

  it('escapes commas, spaces and equals signs in tags and field keys; newlines become spaces', () => {
    const [line] = toLineProtocol([{device_id: 'd', metric: 'a b', ts: '2026-11-24T00:00:00.000Z', value: 1, seq: 1}],
      () => ({type: 'x=y', site: 'berlin, 3rd floor', note: 'two\nlines'}))
    expect(line).toBe('telemetry,device=d,note=two\\ lines,site=berlin\\,\\ 3rd\\ floor,type=x\\=y a\\ b=1 1795478400000000000')
  })

  it('a metric repeated for the same device and time keeps the last value (an overwrite in InfluxDB)', () => {
    const p = points('d', {ts: 1795564800000, seq: 1, metrics: {v: 1}})
    expect(toLineProtocol([...p, {...p[0]!, value: 2}], () => undefined)).toEqual(['telemetry,device=d v=2 1795564800000000000'])
  })
})

describe('which InfluxDB failures are retried', () => {
  const url = 'http://influx:8086'
  it.each([
    [429, false], [500, false], [503, false], [408, false],
    [400, true], [401, true], [403, true], [404, true], [413, true], [422, true],
  ])('HTTP %i permanent=%s', (status, permanent) => {
    const error = classifyInfluxError(new HttpError(status, 'x', '{"message":"why"}', undefined, 'application/json'), url, HttpError)
    expect(error.permanent).toBe(permanent)
    expect(error.status).toBe(status)
    expect(error.message).toContain(`answered ${status}`)
    if (permanent) expect(error.hint).toBeTruthy()
  })

  it('429 with Retry-After waits as long as asked', () => {
    const error = classifyInfluxError(new HttpError(429, 'Too Many Requests', '', '7', undefined, undefined, {'retry-after': '7'}), url, HttpError)
    expect(error.retryAfterMs).toBe(7000)
  })

  it('network errors and timeouts are retried', () => {
    expect(classifyInfluxError(Object.assign(new Error('connect ECONNREFUSED'), {code: 'ECONNREFUSED'}), url, HttpError).permanent).toBe(false)
    expect(classifyInfluxError(new RequestTimedOutError(), url, HttpError).permanent).toBe(false)
  })

  it('the URL in messages is masked', () => {
    expect(classifyInfluxError(new Error('x'), 'http://user:pw@influx:8086', HttpError).message).not.toContain('pw')
  })
})

describe('--telemetry-sink', () => {
  it.each([
    ['postgres', ['postgres']], ['influx', ['influx']], ['postgres,influx', ['postgres', 'influx']], [' influx , influx ', ['influx']],
    ['', undefined], ['mysql', undefined], ['postgres,mysql', undefined],
  ])('%j → %j', (text, kinds) => {
    expect(parseSinkKinds(text)).toEqual(kinds)
  })
})
