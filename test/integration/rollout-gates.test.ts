import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {commandRollout, waitForRollout} from '../../src/lib/rollout/index.js'
import {eventually, rolloutWorld, sleep, type RolloutWorld} from '../helpers/rollout-world.js'

/**
 * What a rollout does besides install status: health gates on the updated devices' telemetry and
 * presence during the soak, the dispatch rate, and the operator's pause / resume / abort --rollback.
 */
describe('rollout gates, rate and operator commands', () => {
  let w: RolloutWorld

  beforeAll(async () => {
    w = await rolloutWorld()
  }, 120_000)

  afterAll(async () => {
    await w?.close()
  }, 60_000)

  it('a metric health gate breached during the soak fails the devices and aborts the rollout', async () => {
    // The simulated temperature walks within 18..26: 'temperature<10' is breached by every reading after the update.
    await w.fleet('hot-', 10, 'gate-a', '1.0.0', {}, true, 500)
    await w.upload('gate-a', '1.1.0')
    await w.create({name: 'hot', firmware: 'gate-a@1.1.0', stages: [100], soakMs: 5000, minDecided: 3, maxFailureRate: 0.2, health: 'temperature<10'})
    await expect(waitForRollout(w.db, 'hot', {timeoutMs: 30_000, pollMs: 200})).rejects.toMatchObject({exitCode: 7})
    const failed = (await w.targets('hot')).filter((t) => t.state === 'failed')
    expect(failed.length).toBeGreaterThanOrEqual(2)
    const {rows} = await w.db.pool.query<{reason: string}>("SELECT DISTINCT reason FROM rollout_targets WHERE rollout = 'hot' AND state = 'failed'")
    expect(rows.map((r) => r.reason)).toEqual(['health check temperature<10 failed after the update'])
  }, 60_000)

  it('a passing health gate lets the rollout complete', async () => {
    await w.fleet('cool-', 10, 'gate-b', '1.0.0', {}, true, 500)
    await w.upload('gate-b', '1.1.0')
    await w.create({name: 'cool', firmware: 'gate-b@1.1.0', stages: [100], soakMs: 3000, minDecided: 3, maxFailureRate: 0.2, health: 'temperature<80,humidity>=0,status=online'})
    expect((await waitForRollout(w.db, 'cool', {timeoutMs: 30_000, pollMs: 200})).counts.succeeded).toBe(10)
  }, 60_000)

  it('status=online: updated devices that go offline during the soak count as failed', async () => {
    const {fleet} = await w.fleet('gone-', 6, 'gate-c', '1.0.0')
    await w.upload('gate-c', '1.1.0')
    await w.create({name: 'gone', firmware: 'gate-c@1.1.0', stages: [100], soakMs: 60_000, minDecided: 3, maxFailureRate: 0.5, health: 'status=online'})
    await eventually('all six updated and soaking', async () => ((await w.state('gone')).state === 'soaking' ? true : undefined), 30_000)
    await fleet!.stop() // offline (retained status and presence) while the stage soaks
    await expect(waitForRollout(w.db, 'gone', {timeoutMs: 30_000, pollMs: 200})).rejects.toMatchObject({exitCode: 7})
    const {rows} = await w.db.pool.query<{n: number}>("SELECT count(*)::int AS n FROM rollout_targets WHERE rollout = 'gone' AND reason LIKE 'health check status=online%'")
    expect(rows[0]!.n).toBeGreaterThanOrEqual(3)
  }, 60_000)

  it('--rate 120/min spreads dispatches (two a second), not all at once', async () => {
    await w.fleet('slow-', 12, 'gate-d', '1.0.0')
    await w.upload('gate-d', '1.1.0')
    await w.create({name: 'slow', firmware: 'gate-d@1.1.0', stages: [100], soakMs: 200, ratePerMinute: 120})
    await waitForRollout(w.db, 'slow', {timeoutMs: 30_000, pollMs: 200})
    const times = (await w.targets('slow')).map((t) => t.dispatched_at!.getTime()).sort((a, b) => a - b)
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(5000) // 12 at 2/s: at least 5.5 s, never one burst
    // At most one second's worth (two) in any second, even when a controller step comes late.
    for (const t of times) expect(times.filter((u) => u >= t && u < t + 1000).length, 'dispatches within one second').toBeLessThanOrEqual(2)
  }, 60_000)

  it('pause stops dispatching, resume continues; abort --rollback sends updated devices back', async () => {
    const {ids, fleet} = await w.fleet('op-', 20, 'gate-e', '1.0.0')
    await w.upload('gate-e', '1.1.0')
    await w.create({name: 'op', firmware: 'gate-e@1.1.0', stages: [10, 100], soakMs: 1500, minDecided: 50})
    await eventually('the canary soaking', async () => ((await w.state('op')).state === 'soaking' ? true : undefined), 30_000)
    await commandRollout(w.db, 'op', 'pause')
    await sleep(2500) // longer than the soak: a paused rollout must not advance
    expect(await w.state('op')).toMatchObject({state: 'paused', stage: 0})
    expect((await w.targets('op')).filter((t) => t.dispatched_at !== null)).toHaveLength(2)
    await expect(commandRollout(w.db, 'op', 'pause')).rejects.toMatchObject({exitCode: 5})
    await commandRollout(w.db, 'op', 'resume')
    await eventually('stage 2 dispatched', async () => ((await w.state('op')).stage === 1 ? true : undefined), 30_000)
    await eventually('every device updated', async () => ((await w.targets('op')).every((t) => t.state === 'succeeded') ? true : undefined), 30_000)
    await commandRollout(w.db, 'op', 'abort', {rollback: true})
    await eventually('every device back on 1.0.0', async () => (ids.every((id) => fleet!.firmware().get(id) === '1.0.0') ? true : undefined), 30_000)
    // The device flips its slot before its report is stored: wait for the reports too.
    const targets = await eventually('every rollback reported', async () => {
      const now = await w.targets('op')
      return now.every((t) => t.rollback_state === 'done') ? now : undefined
    }, 15_000)
    expect(new Set(targets.map((t) => t.state))).toEqual(new Set(['rolled-back']))
    expect(new Set(targets.map((t) => t.rollback_state))).toEqual(new Set(['done']))
    const {rows} = await w.db.pool.query<{n: number}>("SELECT count(*)::int AS n FROM devices WHERE device_id LIKE 'op-%' AND firmware_version = '1.0.0'")
    expect(rows[0]!.n).toBe(20)
  }, 90_000)

  it('--canary-selector: the first stage is exactly the named devices; the rest follow by the stable hash', async () => {
    await w.db.pool.query(`INSERT INTO devices (device_id, device_type, firmware_version, firmware_key, labels)
      SELECT 'can-' || lpad(i::text, 3, '0'), 'gate-f', '1.0.0', $1, jsonb_build_object('ring', CASE WHEN i % 7 = 0 THEN 'canary' ELSE 'main' END)
      FROM generate_series(0, 69) i`, [(await import('../../src/lib/registry/firmware-key.js')).firmwareKey('1.0.0')])
    await w.upload('gate-f', '1.1.0')
    await w.create({name: 'canaries', firmware: 'gate-f@1.1.0', stages: [1, 50, 100], canarySelector: 'ring=canary', soakMs: 60_000})
    const targets = await w.targets('canaries')
    const named = (await w.db.pool.query<{device_id: string}>("SELECT device_id FROM devices WHERE labels->>'ring' = 'canary' AND device_type = 'gate-f'")).rows.map((r) => r.device_id)
    expect(named).toHaveLength(10)
    expect(new Set(targets.filter((t) => t.stage === 0).map((t) => t.device_id))).toEqual(new Set(named))
    expect(targets.filter((t) => t.stage <= 1)).toHaveLength(35)
    expect(targets).toHaveLength(70)
    // The SQL that fixed the targets orders them as the pure planner does (canaries first, then SHA-256 of rollout/device).
    const {orderTargets} = await import('../../src/lib/rollout/planner.js')
    expect(targets.map((t) => t.device_id)).toEqual(orderTargets('canaries', targets.map((t) => t.device_id).sort(), new Set(named)))
    await commandRollout(w.db, 'canaries', 'abort')
  }, 30_000)
})
