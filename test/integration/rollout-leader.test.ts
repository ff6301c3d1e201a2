import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {LEADER_LOCK_KEY, waitForRollout, type RolloutController} from '../../src/lib/rollout/index.js'
import {eventually, rolloutWorld, sleep, type RolloutWorld} from '../helpers/rollout-world.js'

const FAULT_POINTS = ['rollout.after_dispatch', 'rollout.after_publish', 'rollout.after_advance'] as const

/**
 * Crash safety and leadership: the leading controller is stopped dead at each named fault point
 * (IOTCTL_FAULTS=point:throw kills it in-process the way SIGKILL would: its database session, and
 * with it the advisory lock, simply ends) while a standby waits. The standby takes over; every device
 * still installs exactly once, counted by the devices themselves.
 */
describe('rollout controller: leader election and crashes at fault points', () => {
  let w: RolloutWorld
  const leaders = async (controllers: RolloutController[]) => controllers.filter((c) => c.isLeader())

  beforeAll(async () => {
    w = await rolloutWorld()
  }, 120_000)

  afterAll(async () => {
    delete process.env.IOTCTL_FAULTS
    await w?.close()
  }, 60_000)

  it('two controllers at once: exactly one leads, and every device installs exactly once', async () => {
    const second = await w.controller()
    const all = [w.services.firmware.controller, second]
    await eventually('a leader', async () => ((await leaders(all)).length > 0 ? true : undefined), 10_000, 50)
    await sleep(1000) // both have tried the lock several times by now
    expect(await leaders(all)).toHaveLength(1)
    const {rows} = await w.db.pool.query<{n: number}>("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND granted", [LEADER_LOCK_KEY])
    expect(rows[0]!.n).toBe(1)
    const {ids, fleet} = await w.fleet('duo-', 40, 'leader-a', '1.0.0')
    await w.upload('leader-a', '1.1.0')
    await w.create({name: 'duo', firmware: 'leader-a@1.1.0', stages: [10, 50, 100], soakMs: 300, minDecided: 5})
    expect((await waitForRollout(w.db, 'duo', {timeoutMs: 60_000, pollMs: 200})).counts.succeeded).toBe(40)
    for (const id of ids) expect(fleet!.installs().get(`${id}@1.1.0`), id).toBe(1)
  }, 90_000)

  for (const [i, point] of FAULT_POINTS.entries()) {
    it(`the leader dies at ${point}: a standby takes over, nothing is lost and no device installs twice`, async () => {
      await w.controller() // one more standby than the leader that is about to die
      const type = `crash-${i}`
      const {ids, fleet} = await w.fleet(`c${i}-`, 30, type, '1.0.0')
      await w.upload(type, '2.0.0')
      const before = w.log.filter((l) => l.includes(`fault injected at ${point}`)).length
      process.env.IOTCTL_FAULTS = `${point}:throw`
      try {
        await w.create({name: `crash-${i}`, firmware: `${type}@2.0.0`, stages: [10, 50, 100], soakMs: 300, minDecided: 5})
        await eventually(`a controller to die at ${point}`, async () => (w.log.filter((l) => l.includes(`fault injected at ${point}`)).length > before ? true : undefined), 30_000, 50)
      } finally {
        delete process.env.IOTCTL_FAULTS
      }
      await eventually('a standby to lead', async () => ((await leaders(w.controllers())).length === 1 ? true : undefined), 10_000, 50)
      const status = await waitForRollout(w.db, `crash-${i}`, {timeoutMs: 60_000, pollMs: 200})
      expect(status.state).toBe('completed')
      expect(status.counts.succeeded).toBe(30)
      for (const id of ids) expect(fleet!.installs().get(`${id}@2.0.0`), id).toBe(1)
      // The dispatch log: one install assignment id per device; duplicates on the wire (after_publish) are the same id.
      for (const id of ids) expect(new Set(w.dispatched.get(id)!.map((d) => d.id))).toEqual(new Set([`crash-${i}/install`]))
    }, 90_000)
  }
})
