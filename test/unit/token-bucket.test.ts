import {describe, expect, it} from 'vitest'
import {tokenBucket} from '../../src/lib/broker/server.js'

describe('connection rate token bucket', () => {
  it('allows a burst of `rate`, then refills at `rate` per second', () => {
    let now = 0
    const bucket = tokenBucket(3, () => now)
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false])
    now += 334 // one token back (3 per second)
    expect([bucket.take(), bucket.take()]).toEqual([true, false])
    now += 10_000 // never more than the burst
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false])
  })
})
