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
    world = await pkiWorld({prefix: 'ingest-restart', devices: ids, operators: ['ingest-1']})
    mosquitto = await startMosquitto(world)
    identityDir = join(world.dir, 'ingest-1')
    const identity = world.certs.get('ingest-1')!
    await mkdir(identityDir, {recursive: true})
    await writeFile(join(identityDir, 'operator.crt'), identity.certificate)
    await writeFile(join(identityDir, 'operator.key'), identity.private_key!, {mode: 0o600})
    await writeFile(join(identityDir, 'chain.pem'), identity.chain)
  }, 120_000)

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    worker?.kill('SIGKILL')
    await mosquitto?.stop()
    await world?.close()
  })

  /** Start `iotctl serve --components ingest`; resolves once it reports ready on stderr. */
  function startWorker(): Promise<ChildProcess> {
    const env: NodeJS.ProcessEnv = {...process.env, CI: 'true', NO_COLOR: '1'}
    delete env.NODE_ENV // else oclif would load src/ through tsx
    const child = spawn(process.execPath, [BIN, 'serve', '--components', 'ingest', '--broker-url', `mqtts://127.0.0.1:${mosquitto.servicePort}`,
      '--identity', identityDir, '--database-url', world.db.url, '-o', 'json'], {env, stdio: ['ignore', 'pipe', 'pipe']})
    return new Promise((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        workerLog += d
        if (workerLog.includes('[serve] ready')) resolve(child)
      })
      child.once('exit', (code) => reject(new Error(`iotctl serve exited with ${code} before it was ready:\n${workerLog}`)))
      setTimeout(() => reject(new Error(`iotctl serve not ready after 30 s:\n${workerLog}`)), 30_000).unref()
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
      await crash(worker)
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
    expect(workerLog.match(/ingest subscribed to/g)?.length).toBe(4)
    // A graceful stop stores what it took and exits 0.
    const exited = new Promise<number | null>((resolve) => worker!.once('exit', resolve))
    worker.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(await count('SELECT count(*) AS n FROM telemetry')).toBe(total)
  }, 300_000)
})
