import {describe, expect, it} from 'vitest'
import {DEFAULT_METRICS, MetricWalk, parseMetrics, type MetricSpec} from '../../src/lib/simulator/metrics.js'
import {simulatedIds} from '../../src/lib/simulator/prepare.js'
import {expectIotctlError} from '../helpers/pki-fixtures.js'

/** mulberry32: a small seeded PRNG, so every run of these tests walks the same path. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

const STEPS = 10_000

describe('parseMetrics (--metrics)', () => {
  it('parses name:min..max lists, with spaces, negatives and decimals', () => {
    expect(parseMetrics(DEFAULT_METRICS)).toEqual([{name: 'temperature', min: 18, max: 26}, {name: 'humidity', min: 40, max: 60}])
    expect(parseMetrics(' pressure:990..1030 , cold_room.t-1:-20.5..-2.25,')).toEqual([
      {name: 'pressure', min: 990, max: 1030}, {name: 'cold_room.t-1', min: -20.5, max: -2.25}])
  })

  it.each([
    ['bad'], ['temperature'], ['temperature:18'], ['temperature:18..'], ['temperature:..26'], ['temperature:a..b'],
    ['temperature:18-26'], ['1abc:1..2'], ['temp erature:1..2'], ['temperature:1e3..2e3'], ['a:1..2,bad'],
  ])('%j → exit 4 E_METRICS naming the part, with a hint showing the syntax', async (text) => {
    const error = await expectIotctlError(Promise.resolve().then(() => parseMetrics(text)), 4, 'E_METRICS', /expected name:min\.\.max/)
    expect((error as Error & {hint?: string}).hint).toContain(`--metrics ${DEFAULT_METRICS}`)
  })

  it.each([['t:5..5'], ['t:26..18'], ['t:-1..-2']])('%j: min must be below max → exit 4', async (text) => {
    await expectIotctlError(Promise.resolve().then(() => parseMetrics(text)), 4, 'E_METRICS', /min < max/)
  })

  it('an empty list → exit 4 with a hint', async () => {
    for (const text of ['', ' ', ',', ' , ']) {
      const error = await expectIotctlError(Promise.resolve().then(() => parseMetrics(text)), 4, 'E_METRICS', /no metrics/)
      expect((error as Error & {hint?: string}).hint).toContain('--metrics')
    }
  })

  it('a metric named twice → exit 4 with a hint', async () => {
    const error = await expectIotctlError(Promise.resolve().then(() => parseMetrics('t:1..2,h:3..4,t:5..6')), 4, 'E_METRICS', /named twice/)
    expect((error as Error & {hint?: string}).hint).toMatch(/once/)
  })
})

describe('MetricWalk (bounded random walk)', () => {
  const specs: MetricSpec[] = [{name: 'temperature', min: 18, max: 26}, {name: 'humidity', min: 40, max: 60}, {name: 'tiny', min: -0.5, max: 0.5}]

  it(`stays within [min, max] over ${STEPS.toLocaleString('en')} steps (seeded)`, () => {
    for (const seed of [1, 42, 20_261_125]) {
      const walk = new MetricWalk(specs, 0, seeded(seed))
      const seen = specs.map(() => ({lo: Infinity, hi: -Infinity}))
      for (let i = 0; i < STEPS; i++) {
        const {metrics, anomaly} = walk.next()
        if (anomaly) throw new Error(`seed ${seed}, step ${i}: an anomaly with --anomaly-rate 0`)
        if (i === 0) expect(Object.keys(metrics)).toEqual(specs.map((s) => s.name))
        specs.forEach((s, j) => {
          const v = metrics[s.name]!
          if (!(v >= s.min && v <= s.max)) throw new Error(`seed ${seed}, step ${i}: ${s.name} = ${v} outside ${s.min}..${s.max}`)
          seen[j]!.lo = Math.min(seen[j]!.lo, v)
          seen[j]!.hi = Math.max(seen[j]!.hi, v)
        })
      }
      // It wanders: over 10,000 steps a walk reaches well into both halves of its range (not stuck).
      specs.forEach((s, j) => {
        const range = s.max - s.min
        expect(seen[j]!.lo, `${s.name} lowest`).toBeLessThan(s.min + 0.25 * range)
        expect(seen[j]!.hi, `${s.name} highest`).toBeGreaterThan(s.max - 0.25 * range)
      })
    }
  })

  it('moves by at most 5% of the range per step (readings are rounded to 0.01)', () => {
    const walk = new MetricWalk(specs, 0, seeded(7))
    let previous = walk.next().metrics
    let largest = specs.map(() => 0)
    for (let i = 0; i < STEPS; i++) {
      const {metrics} = walk.next()
      largest = specs.map((s, j) => Math.max(largest[j]!, Math.abs(metrics[s.name]! - previous[s.name]!)))
      previous = metrics
    }
    specs.forEach((s, j) => {
      const range = s.max - s.min
      // Each reading is rounded to 2 decimals (±0.005), so two readings differ by at most 0.01 more.
      expect(largest[j], s.name).toBeLessThanOrEqual(0.05 * range + 0.01 + 1e-9)
      // …and the walk does use most of that step (not a constant).
      expect(largest[j], s.name).toBeGreaterThan(0.04 * range)
    })
  })

  it('spikes at about --anomaly-rate, outside the range, and says so', () => {
    for (const rate of [0.01, 0.05, 0.2]) {
      const walk = new MetricWalk(specs, rate, seeded(Math.round(rate * 1000)))
      let flagged = 0
      let mismatched = 0
      let implausible = 0
      const spikes = specs.map(() => 0)
      for (let i = 0; i < STEPS; i++) {
        const {metrics, anomaly} = walk.next()
        let any = false
        specs.forEach((s, j) => {
          const v = metrics[s.name]!
          if (v < s.min || v > s.max) {
            spikes[j]!++
            any = true
            // A spike is at least a whole range above the maximum: never a plausible reading.
            if (!(v >= s.max + (s.max - s.min) - 0.01)) implausible++
          }
        })
        if (anomaly) flagged++
        if (anomaly !== any) mismatched++
      }
      expect({mismatched, implausible}).toEqual({mismatched: 0, implausible: 0})
      // Per metric a reading spikes with probability `rate`: binomial(10,000, rate). ±25% is over 4.5σ
      // even at 1% (σ ≈ 10 of 100); the seed is fixed, so this is deterministic anyway.
      for (const n of spikes) {
        expect(n).toBeGreaterThan(STEPS * rate * 0.75)
        expect(n).toBeLessThan(STEPS * rate * 1.25)
      }
      // A message is flagged when any of its metrics spiked: 1 − (1 − rate)^metrics.
      const expected = STEPS * (1 - (1 - rate) ** specs.length)
      expect(flagged).toBeGreaterThan(expected * 0.85)
      expect(flagged).toBeLessThan(expected * 1.15)
    }
  })

  it('anomaly rate 0 never spikes and 1 always does', () => {
    const never = new MetricWalk(specs, 0, seeded(3))
    const always = new MetricWalk(specs, 1, seeded(3))
    for (let i = 0; i < 1000; i++) {
      expect(never.next().anomaly).toBe(false)
      const {metrics, anomaly} = always.next()
      expect(anomaly).toBe(true)
      for (const s of specs) expect(metrics[s.name]).toBeGreaterThan(s.max)
    }
  })
})

describe('simulatedIds', () => {
  it('zero-pads to at least 4 digits, so ids sort in creation order', () => {
    expect(simulatedIds('sim-', 3)).toEqual(['sim-0000', 'sim-0001', 'sim-0002'])
    expect(simulatedIds('sim-', 1)).toEqual(['sim-0000'])
    expect(simulatedIds('x', 0)).toEqual([])
    const tenK = simulatedIds('sim-', 10_000)
    expect(tenK).toHaveLength(10_000)
    expect([tenK[0], tenK.at(-1)]).toEqual(['sim-0000', 'sim-9999'])
  })

  it('widens beyond 4 digits only when the count needs it, and the ids stay unique and sorted', () => {
    const ids = simulatedIds('lab_', 10_001)
    expect([ids[0], ids[9999], ids.at(-1)]).toEqual(['lab_00000', 'lab_09999', 'lab_10000'])
    expect(new Set(ids.map((id) => id.length))).toEqual(new Set(['lab_00000'.length]))
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
    // Valid device ids (docs/PROTOCOL.md: ^[a-z0-9][a-z0-9_-]{0,63}$).
    for (const id of [...simulatedIds('sim-', 100_000).slice(-1), ...ids.slice(0, 1)]) expect(id).toMatch(/^[a-z0-9][a-z0-9_-]{0,63}$/)
  })
})
