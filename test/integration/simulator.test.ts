import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {freePort} from '../../src/lib/db/embedded.js'
import {DEFAULT_METRICS, parseMetrics, startFleet, type FleetSummary, type RunningFleet} from '../../src/lib/simulator/index.js'
import {prepareSimulation, type SimulationPlan} from '../../src/lib/simulator/prepare.js'
import {startDevBroker} from '../../src/lib/stack/dev-broker.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {caPem, cleanup, tempDir} from '../helpers/pki-fixtures.js'

const DEVICES = 200
const METRICS = parseMetrics(DEFAULT_METRICS) // two metrics: two telemetry rows per message
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

type Services = Awaited<ReturnType<typeof startDevBroker>>

/**
 * The simulator's fleet (startFleet, as `iotctl simulate` runs it) against the dev-stack wiring
 * (startDevBroker: the embedded broker over mutual TLS, the ingest in its publish path, the shadow
 * sync) with a temporary home and a real PostgreSQL. What is checked is what a user would see in
 * the database afterwards, against what the simulator says it sent and got acknowledged.
 */
describe('simulator fleet against the dev stack', () => {
  let db: TestDatabase
  let home: string
  let caDir: string
  let passphrase: string
  let trust: string
  let ports: {mqtt: number; service: number}
  let services: Services | undefined
  const brokerLog: string[] = []
  const running: RunningFleet[] = []

  const startServices = async () => {
    const keep = (line: string) => void brokerLog.push(line)
    services = await startDevBroker({home, db, mqttPort: ports.mqtt, servicePort: ports.service, logs: {broker: keep, ingest: keep, shadow: keep}})
    return services
  }
  const stopServices = async () => {
    const s = services
    services = undefined
    await s?.firmware.stop()
    await s?.broker.close()
    await s?.telemetry.flush()
    await s?.shadow.stop()
  }
  const prepare = (prefix: string): Promise<SimulationPlan> =>
    prepareSimulation(db, {caDir, passphrase, prefix, count: DEVICES, type: 'sensor', register: true})
  const fleet = async (plan: SimulationPlan, extra: {onAttempt?: (id: string, at: number) => void} = {}) => {
    const f = await startFleet({url: `mqtts://127.0.0.1:${ports.mqtt}`, trust, devices: plan.devices, intervalMs: 1000, metrics: METRICS,
      anomalyRate: 0, qos: 1, log: () => undefined, ...extra})
    running.push(f)
    return f
  }
  const stop = async (f: RunningFleet): Promise<FleetSummary> => {
    running.splice(running.indexOf(f), 1)
    return f.stop()
  }

  /** Per device: telemetry rows, distinct seq, min and max seq, and rows whose seq has not exactly one row per metric. */
  const stored = async (prefix: string) => {
    const {rows} = await db.pool.query<{device_id: string; rows: string; seqs: string; min: string | null; max: string | null; odd: string}>(
      `SELECT device_id, sum(n) AS rows, count(*) AS seqs, min(seq) AS min, max(seq) AS max, count(*) FILTER (WHERE n <> $2) AS odd
         FROM (SELECT device_id, seq, count(*) AS n FROM telemetry WHERE device_id LIKE $1 GROUP BY 1, 2) s GROUP BY 1`,
      [`${prefix}%`, METRICS.length])
    return new Map(rows.map((r) => [r.device_id, {rows: Number(r.rows), seqs: Number(r.seqs), min: Number(r.min), max: Number(r.max), odd: Number(r.odd)}]))
  }

  /**
   * Every device's sequence numbers in the database are exactly 0 … n−1, where n is how many it
   * sent, each with one row per metric; the rows total the messages acknowledged.
   */
  const expectComplete = async (prefix: string, summary: FleetSummary, sequences: Map<string, number>) => {
    const byDevice = await stored(prefix)
    const problems: string[] = []
    for (const [id, sent] of sequences) {
      const s = byDevice.get(id) ?? {rows: 0, seqs: 0, min: NaN, max: NaN, odd: 0}
      if (sent === 0) problems.push(`${id}: sent nothing`)
      else if (s.seqs !== sent || s.min !== 0 || s.max !== sent - 1 || s.odd !== 0) {
        problems.push(`${id}: sent seq 0..${sent - 1}, database has ${s.seqs} distinct seq in ${s.min}..${s.max}${s.odd ? `, ${s.odd} with a metric missing or doubled` : ''}`)
      }
    }
    expect(problems.slice(0, 20), `${problems.length} of ${sequences.size} devices incomplete`).toEqual([])
    const rows = [...byDevice.values()].reduce((sum, s) => sum + s.rows, 0)
    expect(rows / METRICS.length).toBe(summary.acknowledged)
    expect(summary.acknowledged).toBe(summary.sent)
    expect(summary.sent).toBe([...sequences.values()].reduce((a, b) => a + b, 0))
  }

  beforeAll(async () => {
    db = await freshDatabase()
    home = await tempDir('simulator')
    ports = {mqtt: await freePort(), service: await freePort()}
    await startServices()
    caDir = join(home, 'ca')
    passphrase = (await readFile(join(caDir, 'dev-passphrase'), 'utf8')).trim()
    trust = await caPem(caDir, 'root.crt', 'service-ca.crt')
  }, 120_000)

  afterAll(async () => {
    await Promise.allSettled(running.map((f) => f.stop()))
    await stopServices()
    await db?.drop()
    await cleanup(home)
  }, 60_000)

  it(`${DEVICES} devices for 20 s: rows in the database equal messages acknowledged; every device's sequence numbers complete`, async () => {
    const plan = await prepare('sim-a-')
    expect(plan.registered).toBe(DEVICES)
    const startedAt = Date.now()
    const f = await fleet(plan)
    await expect.poll(() => f.counters.connected, {timeout: 60_000, interval: 100}).toBe(DEVICES)
    const connectedAt = Date.now()
    await sleep(20_000)
    const stoppedAt = Date.now()
    const summary = await stop(f)
    await services!.telemetry.flush()
    expect(summary).toMatchObject({devices: DEVICES, connected: DEVICES, errors: 0, reconnects: 0})
    // 1 message/s per device from its start (telemetry before the CONNACK waits in the queue):
    // never more than the seconds since the fleet started, plus one; and at least 15 in the 20 s
    // after all were connected (timers only ever fire late, so a busy machine means fewer).
    const sequences = f.sequences()
    const most = Math.floor((stoppedAt - startedAt) / 1000) + 1
    const counts = [...sequences.values()]
    expect(Math.max(...counts), `connected after ${connectedAt - startedAt} ms`).toBeLessThanOrEqual(most)
    expect(Math.min(...counts), `connected after ${connectedAt - startedAt} ms`).toBeGreaterThanOrEqual(15)
    await expectComplete('sim-a-', summary, sequences)
    const {rows: offline} = await db.pool.query<{n: string}>("SELECT count(*) AS n FROM devices WHERE device_id LIKE 'sim-a-%' AND status = 'offline'")
    expect(Number(offline[0]!.n), 'every device announced offline when the fleet stopped').toBe(DEVICES)

    // Spread evenly, not in bursts: over the steady part of the run, the messages' timestamps taken
    // modulo the 1 s interval fall into ten 100 ms slots about equally (each slot holds ~10% of
    // the messages; lockstep devices would put ~100% into one slot).
    const {rows: slots} = await db.pool.query<{slot: number; n: string}>(
      `WITH b AS (SELECT min(ts) + interval '3 s' AS lo, max(ts) - interval '3 s' AS hi FROM telemetry WHERE device_id LIKE 'sim-a-%')
       SELECT floor((extract(epoch FROM ts) * 1000)::bigint % 1000 / 100)::int AS slot, count(*) AS n
         FROM telemetry, b WHERE device_id LIKE 'sim-a-%' AND metric = $1 AND ts BETWEEN b.lo AND b.hi GROUP BY 1 ORDER BY 1`, [METRICS[0]!.name])
    const perSlot = slots.map((s) => Number(s.n))
    const total = perSlot.reduce((a, b) => a + b, 0)
    expect(perSlot, `messages per 100 ms slot of the second: ${perSlot.join(' ')}`).toHaveLength(10)
    expect(Math.max(...perSlot) / total, `messages per 100 ms slot of the second: ${perSlot.join(' ')}`).toBeLessThan(0.15)
    expect(Math.min(...perSlot) / total, `messages per 100 ms slot of the second: ${perSlot.join(' ')}`).toBeGreaterThan(0.05)
  }, 150_000)

  it(`kill the broker for 5 s mid-run: all ${DEVICES} devices reconnect with spread-out attempts and no QoS 1 message is lost`, async () => {
    const plan = await prepare('sim-b-')
    const attempts: Array<{id: string; at: number}> = []
    const f = await fleet(plan, {onAttempt: (id, at) => void attempts.push({id, at})})
    await expect.poll(() => f.counters.connected, {timeout: 60_000, interval: 100}).toBe(DEVICES)
    await sleep(5000)

    const killedAt = Date.now()
    await stopServices()
    await expect.poll(() => f.counters.connected, {timeout: 5000, interval: 50}).toBe(0)
    const sentAtKill = f.counters.sent
    await sleep(5000)
    const restartedAt = Date.now()
    await startServices()
    // Full jitter with base 1 s and cap 60 s: a device whose 4th or 5th retry fell just before the
    // restart waits up to 16 or 32 s more; simulated, the last of 200 is back 30 s (median) to 65 s
    // (p99.9) after the drop.
    await expect.poll(() => f.counters.connected, {timeout: 90_000, interval: 100}).toBe(DEVICES)
    const allBackAt = Date.now()
    expect(f.counters.reconnects).toBeGreaterThanOrEqual(DEVICES)
    expect(f.counters.sent - sentAtKill, 'devices kept producing telemetry while disconnected').toBeGreaterThanOrEqual(DEVICES * 4)
    await sleep(3000)
    const summary = await stop(f)
    await services!.telemetry.flush()

    // Reconnect attempts after the broker went away (the first retry of each device and all later
    // ones). Full jitter: the first retry is at random(0, 1 s) after the drop, the next random(0, 2 s)…
    const after = attempts.filter((a) => a.at >= killedAt)
    const firstRetry = new Map<string, number>()
    for (const a of after) if (!firstRetry.has(a.id)) firstRetry.set(a.id, a.at)
    expect(firstRetry.size).toBe(DEVICES)
    const first = [...firstRetry.values()].sort((a, b) => a - b)
    const span = first.at(-1)! - first[0]!
    const busiest = (times: number[], windowMs: number) => {
      const t = [...times].sort((a, b) => a - b)
      let best = 0
      for (let i = 0, j = 0; i < t.length; i++) {
        while (t[i]! - t[j]! >= windowMs) j++
        best = Math.max(best, i - j + 1)
      }
      return best
    }
    const report = `killed at 0 ms, restarted at ${restartedAt - killedAt} ms, all back at ${allBackAt - killedAt} ms; ` +
      `${after.length} attempts after the drop; first retries from ${first[0]! - killedAt} to ${first.at(-1)! - killedAt} ms; ` +
      `busiest 100 ms: ${busiest(first, 100)} first retries, ${busiest(after.map((a) => a.at), 100)} of all attempts`
    // 200 first retries uniform over 1 s: their span is ~990 ms (below 500 ms with probability
    // ~200·0.5^199, i.e. never); a fleet retrying in lockstep would span a few milliseconds.
    expect(span, report).toBeGreaterThanOrEqual(500)
    // A 100 ms window holds ~10% of uniform first retries (20 of 200, σ ≈ 4.2); 20% (40) is > 4.5σ
    // above that even for the busiest of the sliding windows. Lockstep would put ~100% in one.
    expect(busiest(first, 100), report).toBeLessThanOrEqual(0.2 * DEVICES)
    // All attempts after the drop (the failed ones while the broker was down included) are spread
    // over several seconds by the growing jitter window: again no 100 ms window holds 20% of them.
    expect(busiest(after.map((a) => a.at), 100), report).toBeLessThanOrEqual(0.2 * after.length)
    // Nobody retried in a tight loop: backoff doubles, so attempts per device stay few.
    const perDevice = new Map<string, number>()
    for (const a of after) perDevice.set(a.id, (perDevice.get(a.id) ?? 0) + 1)
    expect(Math.max(...perDevice.values()), report).toBeLessThanOrEqual(8)

    // No QoS 1 message lost: what was in flight when the broker died and what was published while
    // it was down was queued, resent after the reconnect, stored and acknowledged.
    expect(summary).toMatchObject({devices: DEVICES, connected: DEVICES})
    expect(summary.reconnects).toBeGreaterThanOrEqual(DEVICES)
    await expectComplete('sim-b-', summary, f.sequences())
    expect(summary.errors).toBe(0)
    const {rows: offline} = await db.pool.query<{n: string}>("SELECT count(*) AS n FROM devices WHERE device_id LIKE 'sim-b-%' AND status = 'offline'")
    expect(Number(offline[0]!.n), 'every device announced offline when the fleet stopped').toBe(DEVICES)
  }, 240_000)
})
