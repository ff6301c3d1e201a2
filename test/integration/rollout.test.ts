import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {waitForRollout} from '../../src/lib/rollout/index.js'
import {eventually, rolloutWorld, sleep, type RolloutWorld} from '../helpers/rollout-world.js'

/**
 * Staged OTA rollouts end to end in one process: the dev stack's controller drives the rollout,
 * simulated devices verify, download over HTTPS, install and report, and the broker's own record
 * of every firmware message (not the controller's word) shows who was sent what.
 */
describe('rollouts against the dev stack with simulated devices', () => {
  let w: RolloutWorld

  beforeAll(async () => {
    w = await rolloutWorld()
  }, 120_000)

  afterAll(async () => {
    await w?.close()
  }, 60_000)

  it('200 devices, stages 1/10/100 with a short soak: completes, every device runs and reports the new version, installed once', async () => {
    const {ids, fleet} = await w.fleet('ok-', 200, 'thermo-a', '1.0.0')
    await w.upload('thermo-a', '1.1.0')
    await w.create({name: 'ok-110', firmware: 'thermo-a@1.1.0', stages: [1, 10, 100], soakMs: 1000})
    const status = await waitForRollout(w.db, 'ok-110', {timeoutMs: 90_000, pollMs: 250})
    expect(status.state).toBe('completed')
    expect(status.counts.succeeded).toBe(200)
    const {rows} = await w.db.pool.query<{firmware_version: string; n: number}>(
      "SELECT firmware_version, count(*)::int AS n FROM devices WHERE device_id LIKE 'ok-%' GROUP BY 1")
    expect(rows).toEqual([{firmware_version: '1.1.0', n: 200}])
    expect(new Set(fleet!.firmware().values())).toEqual(new Set(['1.1.0']))
    for (const id of ids) expect(fleet!.installs().get(`${id}@1.1.0`), id).toBe(1)
    // Stages in order: the canary (2 devices) was dispatched and soaked before stage 2 began, and so on.
    const targets = await w.targets('ok-110')
    expect(targets.filter((t) => t.stage === 0)).toHaveLength(2)
    expect(targets.filter((t) => t.stage <= 1)).toHaveLength(20)
    for (const stage of [0, 1]) {
      const lastOf = Math.max(...targets.filter((t) => t.stage === stage).map((t) => t.dispatched_at!.getTime()))
      const firstNext = Math.min(...targets.filter((t) => t.stage === stage + 1).map((t) => t.dispatched_at!.getTime()))
      expect(firstNext - lastOf).toBeGreaterThanOrEqual(1000) // the soak
    }
    const shadow = await w.db.pool.query<{n: number}>("SELECT count(*)::int AS n FROM shadows WHERE device_id LIKE 'ok-%' AND document->'state'->'desired'->>'firmware' = '1.1.0'")
    expect(shadow.rows[0]!.n).toBe(200)
  }, 120_000)

  it('30% of installs fail: aborts inside the canary stage, nothing reaches devices outside it, and --rollback sends updated canaries back', async () => {
    const {ids, fleet} = await w.fleet('bad-', 100, 'thermo-b', '1.0.0', {failureRate: 0.3})
    await w.upload('thermo-b', '2.0.0')
    await w.create({name: 'bad-200', firmware: 'thermo-b@2.0.0', stages: [10, 50, 100], minDecided: 3, maxFailureRate: 0.1, rollback: true})
    await expect(waitForRollout(w.db, 'bad-200', {timeoutMs: 60_000, pollMs: 250})).rejects.toMatchObject({exitCode: 7})
    const r = await w.state('bad-200')
    expect(r.state).toBe('rolled-back')
    expect(r.stage).toBe(0)
    expect(r.reason).toMatch(/failure rate/)
    const targets = await w.targets('bad-200')
    const canaries = new Set(targets.filter((t) => t.stage === 0).map((t) => t.device_id))
    expect(canaries.size).toBe(10)
    // The broker carried firmware messages to canaries only; later stages were never dispatched.
    const reached = ids.filter((id) => w.dispatched.has(id))
    expect(reached.length).toBeGreaterThan(0)
    for (const id of reached) expect(canaries.has(id), `${id} is not a canary but received ${JSON.stringify(w.dispatched.get(id))}`).toBe(true)
    expect(targets.filter((t) => t.stage > 0 && t.dispatched_at !== null)).toEqual([])
    // Every canary that installed 2.0.0 is sent back and runs 1.0.0 again; the failed ones never left it.
    const settled = await eventually('every updated canary rolled back', async () => {
      const now = await w.targets('bad-200')
      const open = now.filter((t) => t.stage === 0 && (t.state === 'succeeded' || ['dispatched', 'downloading', 'installing'].includes(t.state)))
      return open.length === 0 ? now : undefined
    }, 30_000)
    const stage0 = settled.filter((t) => t.stage === 0)
    expect(stage0.some((t) => t.state === 'failed')).toBe(true)
    expect(stage0.some((t) => t.state === 'rolled-back')).toBe(true)
    for (const t of stage0) expect(['failed', 'rolled-back']).toContain(t.state)
    await eventually('canary firmware back on 1.0.0', async () => ([...canaries].every((id) => fleet!.firmware().get(id) === '1.0.0') ? true : undefined), 15_000)
    for (const id of ids) expect(fleet!.firmware().get(id)).toBe('1.0.0')
    const {rows} = await w.db.pool.query<{n: number}>("SELECT count(*)::int AS n FROM devices WHERE device_id LIKE 'bad-%' AND firmware_version <> '1.0.0'")
    expect(rows[0]!.n).toBe(0)
  }, 120_000)

  it('an offline device gets its assignment when it reconnects; a hanging device becomes timed-out', async () => {
    const online = await w.fleet('live-', 2, 'thermo-c', '1.0.0')
    const hanging = await w.fleet('hang-', 1, 'thermo-c', '1.0.0', {hangRate: 1})
    const offline = await w.fleet('late-', 1, 'thermo-c', '1.0.0', {}, false)
    await w.upload('thermo-c', '1.2.0')
    await w.create({name: 'late-120', firmware: 'thermo-c@1.2.0', stages: [100], stepTimeoutMs: 2000, minDecided: 10})
    const byId = async () => new Map((await w.targets('late-120')).map((t) => [t.device_id, t]))
    await eventually('the offline device marked unreached and the silent one timed-out', async () => {
      const t = await byId()
      return t.get(offline.ids[0]!)?.state === 'unreached' && t.get(hanging.ids[0]!)?.state === 'timed-out' ? true : undefined
    }, 20_000)
    // Coverage 3 of 4 < 90%: the stage waits for the unreached device instead of completing.
    await sleep(1500)
    expect((await w.state('late-120')).state).toBe('soaking')
    const late = await offline.start!()
    const status = await waitForRollout(w.db, 'late-120', {timeoutMs: 30_000, pollMs: 250})
    expect(status.state).toBe('completed')
    const t = await byId()
    expect(t.get(offline.ids[0]!)!.state).toBe('succeeded')
    expect(late.firmware().get(offline.ids[0]!)).toBe('1.2.0')
    expect(t.get(hanging.ids[0]!)!.state).toBe('timed-out')
    for (const id of online.ids) expect(t.get(id)!.state).toBe('succeeded')
  }, 90_000)

  it('a tampered artifact is refused by the devices and counted as failed', async () => {
    const {ids, fleet} = await w.fleet('tamper-', 5, 'thermo-d', '1.0.0')
    const record = await w.upload('thermo-d', '1.0.1')
    const {writeFile} = await import('node:fs/promises')
    const {join} = await import('node:path')
    // Same size, different bytes: only the SHA-256 check can catch it.
    await writeFile(join(w.home, 'artifacts', record.artifact), Buffer.alloc(record.size, 7))
    await w.create({name: 'tamper', firmware: 'thermo-d@1.0.1', stages: [100], minDecided: 3, maxFailureRate: 0.5})
    await expect(waitForRollout(w.db, 'tamper', {timeoutMs: 30_000, pollMs: 250})).rejects.toMatchObject({exitCode: 7})
    const targets = await w.targets('tamper')
    expect(targets.filter((t) => t.state === 'failed').length).toBeGreaterThanOrEqual(3)
    const reasons = await w.db.pool.query<{reason: string}>("SELECT reason FROM rollout_targets WHERE rollout = 'tamper' AND state = 'failed'")
    for (const r of reasons.rows) expect(r.reason).toMatch(/^checksum-mismatch/)
    for (const id of ids) expect(fleet!.firmware().get(id)).toBe('1.0.0')
  }, 60_000)
})
