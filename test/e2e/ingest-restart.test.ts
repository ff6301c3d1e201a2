import {spawn, type ChildProcess} from 'node:child_process'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN} from '../helpers/cli.js'
import {startMosquitto, type RunningMosquitto} from '../helpers/mosquitto.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'

const DEVICES = 200
const MESSAGES = 500

/**
 * The crash test: 200 devices × 500 QoS 1 messages through Debian's Mosquitto (started
 * with the configuration iotctl writes) while the ingest worker — `iotctl serve --components
 * ingest`, a separate process — is killed with SIGKILL and restarted three times. Exactly 100,000
 * rows, and rollup counts equal to raw counts: nothing lost, nothing counted twice.
 */
describe('ingest worker killed and restarted under load', () => {
  let world: PkiWorld
  let mosquitto: RunningMosquitto
  let worker: ChildProcess | undefined
  let identityDir: string
  const clients: MqttClient[] = []
  const ids = Array.from({length: DEVICES}, (_, i) => `k${String(i).padStart(3, '0')}`)
  let workerLog = ''

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'ingest-restart', devices: ids, operators: ['ingest-1', 'ingest-2']})
    mosquitto = await startMosquitto(world)
    for (const name of ['ingest-1', 'ingest-2']) {
      const dir = join(world.dir, name)
      const identity = world.certs.get(name)!
      await mkdir(dir, {recursive: true})
      await writeFile(join(dir, 'operator.crt'), identity.certificate)
      await writeFile(join(dir, 'operator.key'), identity.private_key!, {mode: 0o600})
      await writeFile(join(dir, 'chain.pem'), identity.chain)
    }
    identityDir = join(world.dir, 'ingest-1')
  }, 120_000)

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    worker?.kill('SIGKILL')
    await mosquitto?.stop()
    await world?.close()
  })

  /** Start `iotctl serve --components ingest`; resolves once it reports ready on stderr. */
  function startWorker(identity = identityDir, extra: string[] = [], onLog: (text: string) => void = (t) => (workerLog += t), components = 'ingest'): Promise<ChildProcess> {
    const env: NodeJS.ProcessEnv = {...process.env, CI: 'true', NO_COLOR: '1'}
    delete env.NODE_ENV // else oclif would load src/ through tsx
    const child = spawn(process.execPath, [BIN, 'serve', '--components', components, '--broker-url', `mqtts://127.0.0.1:${mosquitto.servicePort}`,
      '--identity', identity, '--database-url', world.db.url, '-o', 'json', ...extra], {env, stdio: ['ignore', 'pipe', 'pipe']})
    let log = ''
    return new Promise((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        log += d
        onLog(String(d))
        if (log.includes('[serve] ready')) resolve(child)
      })
      child.once('exit', (code) => reject(new Error(`iotctl serve exited with ${code} before it was ready:\n${log}`)))
      setTimeout(() => reject(new Error(`iotctl serve not ready after 30 s:\n${log}`)), 30_000).unref()
    })
  }

  async function crash(child: ChildProcess): Promise<void> {
    const gone = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await gone
  }

  const count = async (sql: string) => Number((await world.db.pool.query(sql)).rows[0].n)

  it('lands exactly 100,000 rows with rollups equal to raw counts', async () => {
    worker = await startWorker() // creates the persistent session before anything is published
    for (const id of ids) clients.push(await connectWith(`mqtts://127.0.0.1:${mosquitto.devicePort}`, world.certs.get(id)!, world.trust, id))
    const T0 = Date.now() - 3_600_000
    let acknowledged = 0
    const publishing = Promise.all(clients.map(async (client, n) => {
      for (let i = 0; i < MESSAGES; i += 25) {
        await Promise.all(Array.from({length: 25}, (_, j) => client.publishAsync(`devices/${ids[n]}/telemetry`,
          JSON.stringify({ts: T0 + (i + j) * 1000, seq: i + j, metrics: {v: i + j}}), {qos: 1})))
        acknowledged += 25
      }
    }))
    for (const at of [0.2, 0.45, 0.7]) {
      await expect.poll(() => acknowledged, {timeout: 120_000, interval: 20}).toBeGreaterThanOrEqual(at * DEVICES * MESSAGES)
      // Stall the database first, so the worker surely holds messages it has taken but not
      // stored when it dies: with a PUBACK before the commit, those would be lost.
      const stall = await world.db.pool.connect()
      await stall.query('BEGIN')
      await stall.query('LOCK TABLE telemetry IN SHARE MODE')
      await new Promise((r) => setTimeout(r, 500))
      await crash(worker)
      await stall.query('ROLLBACK')
      stall.release()
      await new Promise((r) => setTimeout(r, 300))
      worker = await startWorker()
    }
    await publishing
    const total = DEVICES * MESSAGES
    await expect.poll(() => count('SELECT count(*) AS n FROM telemetry'), {timeout: 120_000, interval: 250}).toBe(total)
    for (const table of ['telemetry_1m', 'telemetry_1h', 'telemetry_1d']) {
      expect(await count(`SELECT coalesce(sum(count), 0) AS n FROM ${table}`), table).toBe(total)
    }
    expect(await count('SELECT count(DISTINCT device_id) AS n FROM telemetry')).toBe(DEVICES)
    // The restarts really happened while messages flowed (each start logs its subscription).
    expect(workerLog.match(/\] subscribed to/g)?.length).toBe(4)
    // A graceful stop stores what it took and exits 0.
    const exited = new Promise<number | null>((resolve) => worker!.once('exit', resolve))
    worker.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(await count('SELECT count(*) AS n FROM telemetry')).toBe(total)
  }, 300_000)

  it('two --shared workers split the stream: every message stored once, each worker took a share', async () => {
    const logs = ['', '']
    const workers = await Promise.all(['ingest-1', 'ingest-2'].map((name, n) =>
      startWorker(join(world.dir, name), ['--shared'], (t) => (logs[n] += t))))
    const T1 = Date.now() - 2 * 86_400_000 // a range of its own
    const senders = clients.slice(0, 50)
    await Promise.all(senders.map(async (client, n) => {
      for (let i = 0; i < 200; i += 20) {
        await Promise.all(Array.from({length: 20}, (_, j) => client.publishAsync(`devices/${ids[n]}/telemetry`,
          JSON.stringify({ts: T1 + (i + j) * 1000, seq: i + j, metrics: {v: 1}}), {qos: 1})))
      }
    }))
    const inRange = `SELECT count(*) AS n FROM telemetry WHERE ts < to_timestamp(${(T1 + 86_400_000) / 1000})`
    await expect.poll(() => count(inRange), {timeout: 60_000, interval: 250}).toBe(50 * 200)
    await Promise.all(workers.map((w) => {
      const exited = new Promise((resolve) => w.once('exit', resolve))
      w.kill('SIGTERM')
      return exited
    }))
    const taken = logs.map((log) => Number(/stopped after (\d+) messages/.exec(log)?.[1] ?? NaN))
    expect(taken.every((n) => n > 0), logs.join('\n')).toBe(true)
    expect(taken[0]! + taken[1]!).toBe(50 * 200)
    expect(logs[0]).toContain('$share/iotctl-ingest/devices/+/telemetry')
  }, 120_000)

  it('serve --components ingest,shadow on Mosquitto: a device gets its delta, reports, and is in sync', async () => {
    let log = ''
    const worker = await startWorker(identityDir, [], (t) => (log += t), 'ingest,shadow')
    try {
      const id = ids[0]!
      const device = clients[0]!
      const inbox: Array<{topic: string; body: any}> = []
      device.on('message', (topic, payload) => inbox.push({topic, body: payload.length ? JSON.parse(String(payload)) : null}))
      await device.subscribeAsync([`devices/${id}/shadow/delta`, `devices/${id}/shadow/update/accepted`], {qos: 1})
      const {setDesired, getShadow} = await import('../../src/lib/shadow/index.js')
      await setDesired(world.db, id, {interval: 30})
      await expect.poll(() => inbox.find((m) => m.topic.endsWith('/shadow/delta') && m.body)?.body, {timeout: 10_000}).toMatchObject({state: {interval: 30}, version: 1})
      await device.publishAsync(`devices/${id}/shadow/update`, JSON.stringify({state: {reported: {interval: 30}}}), {qos: 1})
      await expect.poll(() => inbox.find((m) => m.topic.endsWith('/update/accepted'))?.body, {timeout: 10_000}).toMatchObject({version: 2})
      expect((await getShadow(world.db, id)).state.delta).toBeUndefined()
    } finally {
      const exited = new Promise((resolve) => worker.once('exit', resolve))
      worker.kill('SIGTERM')
      await exited
    }
    expect(log).toMatch(/\[shadow\] stopped: 1 updates accepted/)
  }, 60_000)
})
