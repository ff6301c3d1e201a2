import {describe, expect, it} from 'vitest'
import {chooseSource, parseEvery, planQuery, type QueryRequest} from '../../src/lib/telemetry/query-plan.js'
import {DEFAULT_RETENTION, parseRetentionAssignments, planRetention, retentionWarnings, type PartitionInfo} from '../../src/lib/telemetry/retention.js'
import {probeStrings} from '../../src/lib/telemetry/suggest.js'
import {durationMs, formatDuration, parseTimeBound, rfc3339Ms} from '../../src/lib/telemetry/time.js'
import {fitToWidth} from '../../src/lib/cli/views/telemetry.js'

const NOW = Date.UTC(2026, 10, 25, 12, 34, 56, 789)
const H = 3_600_000
const D = 24 * H
const base: QueryRequest = {device: 'dev-1', metric: 'temperature', since: '24h'}
const exit = (code: number, errorCode?: string) => expect.objectContaining({exitCode: code, ...(errorCode ? {code: errorCode} : {})})

describe('which table answers which --every', () => {
  it.each([
    [undefined, 'raw', 'telemetry'],
    ['1s', 'raw', 'telemetry'],
    ['10s', 'raw', 'telemetry'],
    ['90s', 'raw', 'telemetry'], // no rollup divides it
    ['1m', '1m', 'telemetry_1m'],
    ['120s', '1m', 'telemetry_1m'],
    ['5m', '1m', 'telemetry_1m'],
    ['90m', '1m', 'telemetry_1m'],
    ['1h', '1h', 'telemetry_1h'],
    ['60m', '1h', 'telemetry_1h'],
    ['6h', '1h', 'telemetry_1h'],
    ['7h', '1h', 'telemetry_1h'],
    ['1d', '1d', 'telemetry_1d'],
    ['24h', '1d', 'telemetry_1d'],
    ['1440m', '1d', 'telemetry_1d'],
  ])('--every %s → %s', (every, tier, table) => {
    const plan = planQuery({...base, every}, NOW)
    expect([plan.source, plan.table]).toEqual([tier, table])
  })

  it.each(['2d', '25h', '1w', '1441m'])('--every %s is coarser than 1d: exit 4', (every) => {
    expect(() => parseEvery(every)).toThrow(exit(4, 'E_EVERY'))
  })
  it.each(['0m', '1', 'h', '1.5h', '5 minutes', '-1h', '1y'])('--every %s is not a duration: exit 4', (every) => {
    expect(() => parseEvery(every)).toThrow(exit(4, 'E_EVERY'))
  })
  it('chooseSource(null) is raw', () => expect(chooseSource(null)).toBe('raw'))
})

describe('ranges', () => {
  it('raw points: exactly [since, until)', () => {
    const plan = planQuery(base, NOW)
    expect([plan.from, plan.until]).toEqual([NOW - D, NOW])
  })
  it('buckets: widened to whole buckets aligned to UTC', () => {
    const plan = planQuery({...base, every: '1h'}, NOW)
    expect(new Date(plan.from).toISOString()).toBe('2026-11-24T12:00:00.000Z')
    expect(new Date(plan.until).toISOString()).toBe('2026-11-25T13:00:00.000Z')
    expect(plan.requested).toEqual({from: NOW - D, until: NOW})
    const day = planQuery({...base, since: '2026-11-20T05:00:00+02:00', until: '2026-11-22T00:00:00Z', every: '1d'}, NOW)
    expect([day.from, day.until].map((t) => new Date(t).toISOString())).toEqual(['2026-11-20T00:00:00.000Z', '2026-11-22T00:00:00.000Z'])
    const five = planQuery({...base, since: '2026-11-24T10:07:00Z', until: '2026-11-24T10:21:30Z', every: '5m'}, NOW)
    expect([five.from, five.until].map((t) => new Date(t).toISOString())).toEqual(['2026-11-24T10:05:00.000Z', '2026-11-24T10:25:00.000Z'])
  })
  it('--until before or equal to --since is exit 4', () => {
    expect(() => planQuery({...base, since: '1h', until: '2h'}, NOW)).toThrow(exit(4, 'E_TIME_RANGE'))
    expect(() => planQuery({...base, since: '2026-11-24T00:00:00Z', until: '2026-11-24T00:00:00Z'}, NOW)).toThrow(exit(4, 'E_TIME_RANGE'))
  })
  it('device or selector: exactly one (usage, exit 2); bad ids, metrics, aggregates are exit 4', () => {
    expect(() => planQuery({metric: 'x', since: '1h'}, NOW)).toThrow(exit(2))
    expect(() => planQuery({...base, selector: 'site=berlin'}, NOW)).toThrow(exit(2))
    expect(() => planQuery({...base, device: 'Dev 1'}, NOW)).toThrow(exit(4, 'E_DEVICE_ID'))
    expect(() => planQuery({...base, metric: 'temp;drop'}, NOW)).toThrow(exit(4, 'E_METRIC'))
    expect(() => planQuery({...base, agg: 'median'}, NOW)).toThrow(exit(4, 'E_AGG'))
    expect(planQuery({selector: 'site=berlin', metric: 'x', since: '1h'}, NOW).target).toEqual({kind: 'fleet', selector: 'site=berlin'})
  })
})

describe('time parsing', () => {
  it.each([
    ['45s', 45_000], ['90m', 90 * 60_000], ['24h', D], ['7d', 7 * D], ['2w', 14 * D],
  ])('duration %s', (text, ms) => {
    expect(durationMs(text)).toBe(ms)
    expect(parseTimeBound(text, '--since', NOW)).toBe(NOW - ms)
  })
  it.each([
    ['2026-11-24T10:00:00Z', Date.UTC(2026, 10, 24, 10)],
    ['2026-11-24T10:00:00.250Z', Date.UTC(2026, 10, 24, 10, 0, 0, 250)],
    ['2026-11-24t10:00:00z', Date.UTC(2026, 10, 24, 10)],
    ['2026-11-24T10:00:00+01:30', Date.UTC(2026, 10, 24, 8, 30)],
    ['2026-11-24T10:00:00-05:00', Date.UTC(2026, 10, 24, 15)],
  ])('RFC 3339 %s', (text, ms) => {
    expect(rfc3339Ms(text)).toBe(ms)
    expect(parseTimeBound(text, '--since', NOW)).toBe(ms)
  })
  it.each(['yesterday', '24', '24 h', '1.5h', '2026-11-24', '2026-11-24 10:00:00', '2026-11-24T10:00:00', '2026-02-30T00:00:00Z',
    '2026-13-01T00:00:00Z', '2026-11-24T24:00:00Z', '1700000000000', '', '0h', '-1h'])('%j is neither: exit 4', (text) => {
    expect(() => parseTimeBound(text, '--since', NOW)).toThrow(exit(4, 'E_TIME'))
  })
  it.each([[60_000, '1m'], [5400_000, '90m'], [D, '1d'], [30 * D, '30d'], [7 * D, '7d'], [365 * D, '365d'], [1500, '1500ms']])('formatDuration(%d) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })
})

describe('retention planning', () => {
  const day = (iso: string) => Date.parse(`${iso}T00:00:00Z`)
  const part = (table: string, from: string, to: string): PartitionInfo => ({table, partition: `${table}_p${from.replace(/-/g, '')}`, from: day(from), to: day(to)})
  const now = Date.UTC(2026, 10, 25, 6) // 2026-11-25 06:00Z
  const partitions = [
    part('telemetry', '2026-11-17', '2026-11-18'), // ends 7d18h before now: dropped (raw 7d)
    part('telemetry', '2026-11-18', '2026-11-19'), // ends 6d06h before now, after the cutoff (2026-11-18T06Z): kept
    part('telemetry', '2026-11-24', '2026-11-25'),
    part('telemetry_1m', '2026-10-25', '2026-10-26'), // ends 30d06h before: dropped
    part('telemetry_1m', '2026-10-26', '2026-10-27'), // ends 29d06h: kept
    part('telemetry_1h', '2025-10-01', '2025-11-01'), // ends 389d before: dropped
    part('telemetry_1h', '2025-11-01', '2025-12-01'), // ends 359d before: kept (the cutoff is inside it)
    part('telemetry_1h', '2026-11-01', '2026-12-01'),
  ]

  it('drops exactly the partitions wholly older than each tier\'s cutoff', () => {
    expect(planRetention(partitions, DEFAULT_RETENTION, now).map((p) => p.partition)).toEqual([
      'telemetry_p20261117', 'telemetry_1h_p20251001', 'telemetry_1m_p20261025'])
  })
  it('a partition ending exactly at the cutoff is dropped; one a millisecond later is not', () => {
    const p = part('telemetry', '2026-11-17', '2026-11-18')
    expect(planRetention([p], DEFAULT_RETENTION, p.to + 7 * D)).toHaveLength(1)
    expect(planRetention([p], DEFAULT_RETENTION, p.to + 7 * D - 1)).toHaveLength(0)
  })
  it('forever drops nothing; unknown tables are never touched; planning is idempotent', () => {
    expect(planRetention(partitions, {raw: null, '1m': null, '1h': null, '1d': null}, now)).toEqual([])
    expect(planRetention([part('devices', '2000-01-01', '2000-01-02')], DEFAULT_RETENTION, now)).toEqual([])
    const dropped = new Set(planRetention(partitions, DEFAULT_RETENTION, now).map((p) => p.partition))
    expect(planRetention(partitions.filter((p) => !dropped.has(p.partition)), DEFAULT_RETENTION, now)).toEqual([])
  })
  it('parses TIER=DURATION assignments', () => {
    expect(parseRetentionAssignments(['raw=7d', '1m=30d', '1h=365d'])).toEqual({raw: 7 * D, '1m': 30 * D, '1h': 365 * D})
    expect(parseRetentionAssignments(['1h=forever', '1d=forever', 'raw=2w'])).toEqual({'1h': null, '1d': null, raw: 14 * D})
  })
  it.each([
    [['raw'], 'E_RETENTION'], [['5m=7d'], 'E_RETENTION'], [['=7d'], 'E_RETENTION'], [['raw=soon'], 'E_RETENTION'],
    [['raw=12h'], 'E_RETENTION'], [['1d=30d'], 'E_RETENTION'], [['raw=7d', 'raw=8d'], 'E_RETENTION'],
  ])('%j is exit 4', (args, code) => {
    expect(() => parseRetentionAssignments(args)).toThrow(exit(4, code))
  })
  it('nothing to set is a usage error', () => expect(() => parseRetentionAssignments([])).toThrow(exit(2)))
  it('warns when a finer tier outlives a coarser one', () => {
    expect(retentionWarnings(DEFAULT_RETENTION)).toEqual([])
    expect(retentionWarnings({...DEFAULT_RETENTION, raw: 60 * D})).toEqual([expect.stringContaining('raw is kept longer than 1m')])
  })
})

describe('helpers', () => {
  it('device-id probes: prefixes and one-character deletions', () => {
    expect(probeStrings('abc').sort()).toEqual(['a', 'ab', 'abc', 'ac', 'bc'])
  })
  it('plots fit the terminal by averaging neighbours', () => {
    expect(fitToWidth([1, 2, 3], 10)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3])
    expect(fitToWidth([1, 2], 200)).toHaveLength(60)
    expect(fitToWidth([1, 3, 5, 7], 2)).toEqual([2, 6])
  })
})
