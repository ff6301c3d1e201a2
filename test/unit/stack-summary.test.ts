import {describe, expect, it} from 'vitest'
import {liveLine} from '../../src/lib/stack/dev-monitor.js'
import {formatLag, formatLive, formatPlain, formatRate, summarize, type StackSample} from '../../src/lib/stack/summary.js'
import {TelemetryIngest} from '../../src/lib/telemetry/ingest.js'

const sample = (over: Partial<StackSample> = {}): StackSample =>
  ({at: 1_000_000, connections: 0, messages: 0, points: 0, rejected: 0, failures: 0, pendingPoints: 0, ...over})

describe('summarize: two samples → rates and lag', () => {
  it.each([
    {name: 'no previous sample: no rate', prev: undefined, cur: sample({messages: 500}), rate: 0},
    {name: '100 messages in 1 s', prev: sample(), cur: sample({at: 1_001_000, messages: 100}), rate: 100},
    {name: '25 messages in 10 s', prev: sample({messages: 5}), cur: sample({at: 1_010_000, messages: 30}), rate: 2.5},
    {name: 'same instant: no division by zero', prev: sample(), cur: sample({messages: 3}), rate: 0},
    {name: 'counters never run backwards into a negative rate', prev: sample({messages: 9}), cur: sample({at: 1_001_000, messages: 2}), rate: 0},
  ])('$name', ({prev, cur, rate}) => {
    expect(summarize(prev, cur).messagesPerSecond).toBe(rate)
  })

  it('lag is the age of the oldest uncommitted message, 0 when nothing waits', () => {
    expect(summarize(undefined, sample({pendingPoints: 40, oldestPendingAt: 1_000_000 - 250})).lagMs).toBe(250)
    expect(summarize(undefined, sample({pendingPoints: 0})).lagMs).toBe(0)
    expect(summarize(undefined, sample({oldestPendingAt: 1_000_000 + 5})).lagMs).toBe(0) // clock skew between reads
  })

  it('carries the gauges and error totals of the current sample', () => {
    const s = summarize(sample({rejected: 1}), sample({at: 1_001_000, connections: 3, messages: 7, rejected: 2, failures: 4, pendingPoints: 9}))
    expect(s).toMatchObject({connections: 3, messages: 7, rejected: 2, failures: 4, pendingPoints: 9})
  })
})

describe('number formats', () => {
  it.each([[0, '0.0'], [0.44, '0.4'], [9.94, '9.9'], [10, '10'], [152.4, '152'], [12_034.6, '12035']])('rate %s → %s', (n, text) => {
    expect(formatRate(n)).toBe(text)
  })
  it.each([[0, '0s'], [-3, '0s'], [250, '0.25s'], [999, '1s'], [4200, '4.2s'], [59_900, '59.9s'], [95_000, '1m35s'], [3_600_000, '60m0s']])('lag %s ms → %s', (ms, text) => {
    expect(formatLag(ms)).toBe(text)
  })
})

describe('summary lines', () => {
  const busy = summarize(sample(), sample({at: 1_001_000, connections: 3, messages: 152, rejected: 2, failures: 1, pendingPoints: 40, oldestPendingAt: 1_000_800}))

  it('live: short and human', () => {
    expect(formatLive(busy)).toBe('3 connections · 152 msg/s · lag 40 points (0.2s) · 2 rejected · 1 write failure')
    expect(formatLive(summarize(undefined, sample({connections: 1})))).toBe('1 connection · 0.0 msg/s · lag 0 · 0 rejected · 0 write failures')
  })

  it('live: never wider than the terminal (a wrapped line cannot be rewritten in place)', () => {
    const line = formatLive(busy, 30)
    expect(line.length).toBeLessThanOrEqual(29)
    expect(line.endsWith('…')).toBe(true)
    expect(formatLive(busy, 200)).toBe(formatLive(busy))
  })

  it('plain: one key=value line for a log file, no control characters', () => {
    const line = formatPlain(busy)
    expect(line).toBe('summary: connections=3 msg/s=152 messages=152 lag_points=40 lag=0.2s rejected=2 write_failures=1')
    expect(line).not.toMatch(/[\u0000-\u001F]/)
  })
})

describe('liveLine: one line rewritten in place, other lines printed above it', () => {
  it('clears before printing something else and draws the line again after it', () => {
    let out = ''
    const line = liveLine((text) => (out += text))
    line.around(() => (out += 'before anything\n'))
    expect(out).toBe('before anything\n')
    line.show('a')
    line.show('b')
    line.around(() => (out += '[broker] hello\n'))
    line.clear()
    line.clear()
    expect(out).toBe('before anything\n\r\u001B[2Ka\r\u001B[2Kb\r\u001B[2K[broker] hello\nb\r\u001B[2K')
  })
})

describe('TelemetryIngest counters for the summary', () => {
  /** A pool whose INSERT waits for `release()`; the first `failFirst` writes fail. */
  function fakeDb(failFirst: number) {
    let failures = failFirst
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const client = {
      async query(text: string, values?: unknown[]) {
        if (!/INSERT INTO telemetry/.test(text)) return {rows: []}
        await gate
        if (failures-- > 0) throw new Error('disk full')
        return {rows: [{inserted: String((JSON.parse(values![0] as string) as unknown[]).length)}]}
      },
      release() {},
    }
    const pool = {connect: async () => client}
    return {db: {pool: pool as never, url: 'postgres://u:p@127.0.0.1:1/x'}, open: () => release()}
  }
  const payload = (seq: number) => Buffer.from(JSON.stringify({ts: Date.now(), seq, metrics: {t: 20.5, h: 40}}))

  it('pendingPoints and oldestPendingAt follow accepted-but-uncommitted points; failures count failed writes', async () => {
    const fake = fakeDb(1)
    const lines: string[] = []
    const ingest = new TelemetryIngest({db: fake.db, maxDelayMs: 1, log: (l) => lines.push(l)})
    expect(ingest.pendingPoints).toBe(0)
    expect(ingest.oldestPendingAt).toBeUndefined()
    const before = Date.now()
    const first = ingest.accept('dev-1', payload(1))
    const second = ingest.accept('dev-1', payload(2))
    void ingest.accept('dev-1', Buffer.from('not json'))
    expect(ingest.pendingPoints).toBe(4)
    expect(ingest.oldestPendingAt).toBeGreaterThanOrEqual(before)
    expect(ingest.oldestPendingAt).toBeLessThanOrEqual(Date.now())
    expect(ingest.stats).toMatchObject({messages: 3, rejected: 1, failures: 0})
    fake.open()
    await Promise.all([first, second])
    expect(ingest.stats).toMatchObject({points: 4, inserted: 4, batches: 1, failures: 1})
    expect(lines.some((l) => /write failed \(disk full\)/.test(l))).toBe(true)
    expect(ingest.pendingPoints).toBe(0)
    expect(ingest.oldestPendingAt).toBeUndefined()
  })

  it('the oldest pending message is the one in the batch being written, not a later one', async () => {
    const fake = fakeDb(0)
    const ingest = new TelemetryIngest({db: fake.db, maxDelayMs: 1})
    const first = ingest.accept('dev-1', payload(1))
    void ingest.flush() // handed to the writer, which waits at the gate
    const oldest = ingest.oldestPendingAt
    await new Promise((r) => setTimeout(r, 5))
    const second = ingest.accept('dev-1', payload(2))
    expect(ingest.oldestPendingAt).toBe(oldest)
    expect(ingest.pendingPoints).toBe(4)
    fake.open()
    await Promise.all([first, second])
    expect(ingest.oldestPendingAt).toBeUndefined()
  })
})
