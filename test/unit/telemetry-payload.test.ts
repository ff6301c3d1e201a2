import {describe, expect, it} from 'vitest'
import {parseTelemetry} from '../../src/lib/telemetry/payload.js'

const NOW = Date.UTC(2026, 10, 25, 12)
const parse = (body: unknown) => parseTelemetry('d1', Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), NOW)

describe('telemetry payload (docs/PROTOCOL.md)', () => {
  it('accepts epoch milliseconds and RFC 3339, one point per metric', () => {
    expect(parse({ts: NOW, seq: 3, metrics: {temperature: 21.5, humidity: 40}})).toEqual({ok: true, points: [
      {device_id: 'd1', metric: 'temperature', ts: '2026-11-25T12:00:00.000Z', value: 21.5, seq: 3},
      {device_id: 'd1', metric: 'humidity', ts: '2026-11-25T12:00:00.000Z', value: 40, seq: 3}]})
    expect(parse({ts: '2026-11-25T13:00:00+01:00', seq: 0, metrics: {t: -1}})).toMatchObject({ok: true, points: [{ts: '2026-11-25T12:00:00.000Z'}]})
  })

  it.each([
    ['not JSON', 'ts=1', /not JSON/],
    ['an array', [1, 2], /not a JSON object/],
    ['no ts', {seq: 1, metrics: {t: 1}}, /ts must be/],
    ['ts as a loose date string', {ts: '25.11.2026', seq: 1, metrics: {t: 1}}, /ts must be/],
    ['ts before 2000', {ts: 5, seq: 1, metrics: {t: 1}}, /out of range/],
    ['ts more than a day ahead', {ts: NOW + 2 * 86_400_000, seq: 1, metrics: {t: 1}}, /out of range/],
    ['a negative seq', {ts: NOW, seq: -1, metrics: {t: 1}}, /seq/],
    ['a fractional seq', {ts: NOW, seq: 1.5, metrics: {t: 1}}, /seq/],
    ['no metrics', {ts: NOW, seq: 1, metrics: {}}, /1 to 100/],
    ['a string value', {ts: NOW, seq: 1, metrics: {t: '21'}}, /finite number/],
    ['a bad metric name', {ts: NOW, seq: 1, metrics: {'a b': 1}}, /not allowed/],
    ['101 metrics', {ts: NOW, seq: 1, metrics: Object.fromEntries(Array.from({length: 101}, (_, i) => [`m${i}`, i]))}, /1 to 100/],
  ])('rejects %s', (_name, body, reason) => {
    const result = parse(body)
    expect(result.ok).toBe(false)
    expect((result as {reason: string}).reason).toMatch(reason)
  })

  it('rejects payloads over 16 KiB before parsing them', () => {
    expect(parseTelemetry('d1', Buffer.alloc(16 * 1024 + 1, 0x20), NOW)).toMatchObject({ok: false, reason: /exceeds/})
  })
})
