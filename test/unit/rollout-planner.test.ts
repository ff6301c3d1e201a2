import {createHash} from 'node:crypto'

import fc from 'fast-check'
import {describe, expect, it} from 'vitest'

import {IotctlError} from '../../src/lib/core/errors.js'
import {
  canaryRank, orderTargets, parseHealth, parsePercent, parseRate, parseStages, stageBoundaries, stageOf, type HealthCheck,
} from '../../src/lib/rollout/planner.js'

/** The error a call throws (fails the test when it does not throw). */
function thrown(fn: () => unknown): IotctlError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(IotctlError)
    return error as IotctlError
  }
  throw new Error('expected an IotctlError, nothing was thrown')
}

const devices = (n: number) => Array.from({length: n}, (_, i) => `dev-${String(i).padStart(4, '0')}`)
const sha256hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex')

describe('parseStages: accepted', () => {
  const cases: Array<[string, number[]]> = [
    ['1,10,100', [1, 10, 100]],
    ['100', [100]],
    ['50,100', [50, 100]],
    ['1%,10%,100%', [1, 10, 100]],
    ['1,10%,100', [1, 10, 100]],
    [' 1 , 10 , 100 ', [1, 10, 100]],
    ['1,2,5,10,25,50,75,100', [1, 2, 5, 10, 25, 50, 75, 100]],
  ]
  it.each(cases)('%j -> %j', (text, expected) => {
    expect(parseStages(text)).toEqual(expected)
  })
})

describe('parseStages: refused with exit 4', () => {
  const cases: Array<[string, string]> = [
    ['empty', ''],
    ['blank', '   '],
    ['empty part in the middle', '1,,100'],
    ['trailing comma', '1,10,100,'],
    ['leading comma', ',10,100'],
    ['a lone %', '%,100'],
    ['not increasing', '10,5,100'],
    ['a repeated value', '10,10,100'],
    ['a repeated 100', '10,100,100'],
    ['not ending at 100', '1,10,50'],
    ['a single value below 100', '50'],
    ['above 100', '1,10,110'],
    ['above 100 at the end', '50,101'],
    ['zero', '0,10,100'],
    ['a fraction (stages are stored as whole percentages)', '0.5,5,100'],
    ['negative', '-5,10,100'],
    ['a word', 'one,ten,hundred'],
    ['a number with a word', '1,10x,100'],
    ['NaN', 'NaN,100'],
    ['Infinity', '1,Infinity'],
    ['a doubled %', '1%%,100'],
    ['hexadecimal is not a percentage', '0x0a,100'],
    ['exponent notation is not a percentage', '1e1,100'],
    ['more than 20 stages', [...Array.from({length: 20}, (_, i) => i + 1), 100].join(',')],
  ]
  it.each(cases)('%s: %j', (_name, text) => {
    const error = thrown(() => parseStages(text))
    expect(error.exitCode).toBe(4)
    expect(error.code).toBe('E_STAGES')
    expect(error.message).toContain(JSON.stringify(text))
  })
})

describe('parsePercent', () => {
  const accepted: Array<[string, number]> = [
    ['5%', 0.05],
    ['5', 0.05],
    ['0', 0],
    ['0%', 0],
    ['100%', 1],
    ['100', 1],
    ['12.5%', 0.125],
    [' 90% ', 0.9],
  ]
  it.each(accepted)('%j -> %d', (text, expected) => {
    expect(parsePercent(text, '--max-failure-rate')).toBeCloseTo(expected, 12)
  })

  const refused = ['', '%', 'abc', '-1', '-1%', '101', '100.1%', '5%%', '5 %', '0x10', '1e1', 'NaN', '5/min']
  it.each(refused)('%j is refused with exit 4, naming the flag', (text) => {
    const error = thrown(() => parsePercent(text, '--min-coverage'))
    expect(error.exitCode).toBe(4)
    expect(error.code).toBe('E_PERCENT')
    expect(error.message).toContain('--min-coverage')
  })
})

describe('parseRate', () => {
  const accepted: Array<[string, number | undefined]> = [
    ['100/min', 100],
    ['5/s', 300],
    ['3000/h', 50],
    ['unlimited', undefined],
    [' unlimited ', undefined],
    ['1/m', 1],
    ['7/minute', 7],
    ['2/sec', 120],
    ['2/second', 120],
    ['120/hour', 2],
    ['0.5/s', 30],
    ['5 / s', 300],
    ['10000/min', 10_000],
  ]
  it.each(accepted)('%j -> %s per minute', (text, expected) => {
    expect(parseRate(text)).toBe(expected)
  })

  const refused = ['', '100', '0/min', '-5/s', 'abc', '5/ms', '5/d', '5/S', '/min', 'fast', 'Unlimited', '5 per second']
  it.each(refused)('%j is refused with exit 4', (text) => {
    const error = thrown(() => parseRate(text))
    expect(error.exitCode).toBe(4)
    expect(error.code).toBe('E_RATE')
  })
})

describe('canaryRank and orderTargets', () => {
  it('canaryRank is SHA-256 hex of "rollout/device" (the SQL in rollout/store.ts orders by the same)', () => {
    expect(canaryRank('fw-250', 'dev-1')).toBe(sha256hex('fw-250/dev-1'))
    expect(canaryRank('fw-250', 'dev-1')).toMatch(/^[0-9a-f]{64}$/)
    expect(canaryRank('fw-250', 'dev-1')).not.toBe(canaryRank('fw-251', 'dev-1'))
  })

  it('orders by rank, ascending (byte order of the hex, as COLLATE "C")', () => {
    const ids = devices(50)
    const expected = [...ids].sort((a, b) => {
      const [ra, rb] = [sha256hex(`r/${a}`), sha256hex(`r/${b}`)]
      return ra < rb ? -1 : ra > rb ? 1 : 0
    })
    expect(orderTargets('r', ids)).toEqual(expected)
  })

  it('is deterministic: the same input gives the same order', () => {
    const ids = devices(200)
    expect(orderTargets('fw-250', ids)).toEqual(orderTargets('fw-250', [...ids]))
  })

  it('does not depend on the input order', () => {
    const ids = devices(200)
    expect(orderTargets('fw-250', [...ids].reverse())).toEqual(orderTargets('fw-250', ids))
  })

  it('a different rollout name gives a different order (other canaries)', () => {
    const ids = devices(200)
    const a = orderTargets('fw-250', ids)
    const b = orderTargets('fw-251', ids)
    expect(b).not.toEqual(a)
    expect(b.slice(0, 2)).not.toEqual(a.slice(0, 2))
  })

  it('is not the input order (the hash shuffles)', () => {
    const ids = devices(200)
    expect(orderTargets('fw-250', ids)).not.toEqual(ids)
  })

  it('named canaries come first, each group in rank order', () => {
    const ids = devices(30)
    const canaries = new Set(['dev-0029', 'dev-0003', 'dev-0017'])
    const order = orderTargets('fw-250', ids, canaries)
    expect(new Set(order.slice(0, 3))).toEqual(canaries)
    expect(order.slice(0, 3)).toEqual(orderTargets('fw-250', [...canaries]))
    expect(order.slice(3)).toEqual(orderTargets('fw-250', ids.filter((id) => !canaries.has(id))))
  })

  it('a canary set naming devices outside the targets changes nothing else', () => {
    const ids = devices(20)
    expect(orderTargets('r', ids, new Set(['not-a-target']))).toEqual(orderTargets('r', ids))
  })

  it('does not mutate its input', () => {
    const ids = devices(20)
    const copy = [...ids]
    orderTargets('r', ids, new Set([ids[5]!]))
    expect(ids).toEqual(copy)
  })

  it('property: a permutation, stable under shuffling, canaries first, each group ascending by rank', () => {
    const input = fc.uniqueArray(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}$/), {maxLength: 60}).chain((ids) => fc.record({
      rollout: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
      ids: fc.constant(ids),
      shuffled: fc.shuffledSubarray(ids, {minLength: ids.length, maxLength: ids.length}),
      canaries: fc.subarray(ids),
    }))
    fc.assert(fc.property(input, ({rollout, ids, shuffled, canaries}) => {
      const canarySet = new Set(canaries)
      const order = orderTargets(rollout, ids, canarySet)
      expect([...order].sort()).toEqual([...ids].sort())
      expect(orderTargets(rollout, shuffled, canarySet)).toEqual(order)
      expect(order.slice(0, canarySet.size).every((id) => canarySet.has(id))).toBe(true)
      for (let i = 1; i < order.length; i++) {
        if (i === canarySet.size) continue // the boundary between the two groups
        expect(canaryRank(rollout, order[i - 1]!) < canaryRank(rollout, order[i]!)).toBe(true)
      }
    }), {numRuns: 200})
  })
})

describe('stageBoundaries', () => {
  const cases: Array<[string, number, number[], number | undefined, number[]]> = [
    ['200 devices, 1/10/100', 200, [1, 10, 100], undefined, [2, 20, 200]],
    ['1000 devices, 1/10/50/100', 1000, [1, 10, 50, 100], undefined, [10, 100, 500, 1000]],
    ['50 devices, a 1% canary is one device, not zero', 50, [1, 100], undefined, [1, 50]],
    ['50 devices, 1/10/100', 50, [1, 10, 100], undefined, [1, 5, 50]],
    ['fractions round up', 150, [1, 10, 100], undefined, [2, 15, 150]],
    ['3 devices, 1/10/100: one more per stage', 3, [1, 10, 100], undefined, [1, 2, 3]],
    ['1 device, 1/10/100', 1, [1, 10, 100], undefined, [1, 1, 1]],
    ['2 devices, 1/10/50/100: devices run out, then stay at the total', 2, [1, 10, 50, 100], undefined, [1, 2, 2, 2]],
    ['3 devices, 1/2/3/4/100', 3, [1, 2, 3, 4, 100], undefined, [1, 2, 3, 3, 3]],
    ['a single 100% stage', 40, [100], undefined, [40]],
    ['no devices', 0, [1, 10, 100], undefined, [0, 0, 0]],
    ['named canaries: their count is the first stage', 200, [1, 10, 100], 7, [7, 20, 200]],
    ['named canaries above the next stage push it one further', 200, [1, 10, 100], 30, [30, 31, 200]],
    ['more named canaries than devices', 5, [1, 10, 100], 9, [5, 5, 5]],
    ['zero named canaries: percentages as usual', 200, [1, 10, 100], 0, [2, 20, 200]],
  ]
  it.each(cases)('%s', (_name, total, stages, canaries, expected) => {
    expect(stageBoundaries(total, stages, canaries)).toEqual(expected)
  })

  it('property: never decreasing, one more per stage while devices remain, ending at the total', () => {
    const stagesArb = fc.uniqueArray(fc.integer({min: 1, max: 99}), {maxLength: 8}).map((s) => [...s.sort((a, b) => a - b), 100])
    fc.assert(fc.property(fc.integer({min: 0, max: 5000}), stagesArb, fc.option(fc.integer({min: 1, max: 50}), {nil: undefined}),
      (total, stages, canaries) => {
        const bounds = stageBoundaries(total, stages, canaries)
        expect(bounds).toHaveLength(stages.length)
        expect(bounds.at(-1)).toBe(total)
        for (let i = 0; i < bounds.length; i++) {
          expect(bounds[i]).toBeGreaterThanOrEqual(0)
          expect(bounds[i]).toBeLessThanOrEqual(total)
          if (i > 0 && bounds[i - 1]! < total) expect(bounds[i]).toBeGreaterThan(bounds[i - 1]!)
          if (i > 0) expect(bounds[i]).toBeGreaterThanOrEqual(bounds[i - 1]!)
        }
      }), {numRuns: 500})
  })
})

describe('stageOf', () => {
  const bounds = [2, 20, 200]
  const cases: Array<[number, number]> = [[0, 0], [1, 0], [2, 1], [19, 1], [20, 2], [199, 2], [200, 2], [10_000, 2]]
  it.each(cases)('position %i in [2, 20, 200] -> stage %i', (position, expected) => {
    expect(stageOf(position, bounds)).toBe(expected)
  })

  it('collapsed stages: a position belongs to the first stage whose end is beyond it', () => {
    expect([0, 1, 2].map((p) => stageOf(p, [1, 2, 3]))).toEqual([0, 1, 2])
    expect([0, 1].map((p) => stageOf(p, [1, 1, 2]))).toEqual([0, 2])
  })

  it('agrees with stageBoundaries: stage sizes follow the boundaries', () => {
    const b = stageBoundaries(200, [1, 10, 100])
    const sizes = [0, 0, 0]
    for (let p = 0; p < 200; p++) sizes[stageOf(p, b)]! += 1
    expect(sizes).toEqual([2, 18, 180])
  })
})

describe('parseHealth', () => {
  const metric = (name: string, op: '<' | '<=' | '>' | '>=', limit: number, text: string): HealthCheck => ({kind: 'metric', metric: name, op, limit, text})
  const status = (text: string): HealthCheck => ({kind: 'status', status: 'online', text})
  const accepted: Array<[string, HealthCheck[]]> = [
    ['temperature<80,status=online', [metric('temperature', '<', 80, 'temperature<80'), status('status=online')]],
    ['temperature <= 80.5', [metric('temperature', '<=', 80.5, 'temperature <= 80.5')]],
    ['battery>20', [metric('battery', '>', 20, 'battery>20')]],
    ['battery>=20', [metric('battery', '>=', 20, 'battery>=20')]],
    ['rssi>-90', [metric('rssi', '>', -90, 'rssi>-90')]],
    ['cpu.load_1-m<2', [metric('cpu.load_1-m', '<', 2, 'cpu.load_1-m<2')]],
    ['status = online', [status('status = online')]],
    [' temperature<80 , status=online , ', [metric('temperature', '<', 80, 'temperature<80'), status('status=online')]],
    ['', []],
    ['m'.repeat(64) + '<1', [metric('m'.repeat(64), '<', 1, 'm'.repeat(64) + '<1')]],
  ]
  it.each(accepted)('%j', (text, expected) => {
    expect(parseHealth(text)).toEqual(expected)
  })

  const refused: Array<[string, string]> = [
    ['temperature=80', 'temperature=80'],
    ['temperature<abc', 'temperature<abc'],
    ['temperature<', 'temperature<'],
    ['<80', '<80'],
    ['temperature<<80', 'temperature<<80'],
    ['status=offline', 'status=offline'],
    ['status', 'status'],
    ['temp erature<80', 'temp erature<80'],
    ['m'.repeat(65) + '<1', 'm'.repeat(65) + '<1'],
    ['temperature<80,bogus', 'bogus'],
    ['temperature<1e3', 'temperature<1e3'],
  ]
  it.each(refused)('%j is refused with exit 4, naming the bad check', (text, item) => {
    const error = thrown(() => parseHealth(text))
    expect(error.exitCode).toBe(4)
    expect(error.code).toBe('E_HEALTH')
    expect(error.message).toContain(JSON.stringify(item))
  })
})
