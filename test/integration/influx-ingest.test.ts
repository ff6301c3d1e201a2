import type {MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {IotctlError} from '../../src/lib/core/errors.js'
import {createTelemetryService, openSinks, type TelemetryService} from '../../src/lib/telemetry/index.js'
import {createInfluxSink} from '../../src/lib/telemetry/sinks/influx.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'
import {startVictoriaMetrics, type RunningVictoriaMetrics} from '../helpers/victoria-metrics.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const T0 = Date.now() - 3_600_000
const payload = (seq: number) => JSON.stringify({ts: T0 + seq * 1000, seq, metrics: {counter: seq}})

/** Devices publish QoS 1 through the real embedded broker; the ingest stores into VictoriaMetrics through the InfluxDB sink. */
describe('ingest into InfluxDB (VictoriaMetrics) through the embedded broker', () => {
  let world: PkiWorld
  let vm: RunningVictoriaMetrics
  let broker: RunningBroker
  let telemetry: TelemetryService
  const logs: string[] = []
  const clients: MqttClient[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'influx-ingest', devices: ['first', 'flow']})
    vm = await startVictoriaMetrics()
    const sinks = await openSinks({kinds: ['influx'], influx: {url: vm.url, token: 't', org: 'acme', bucket: 'iot', labels: []}}, world.db, (l) => logs.push(l))
    // Retries capped at 1 s so the recovery after the outage is quick; the schedule is otherwise the production one.
    telemetry = createTelemetryService(world.db, (l) => logs.push(l), {sinks, maxRetryDelayMs: 1000, retention: false})
    broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0,
      beforeAck: (topic, body) => telemetry.handle(topic, body)})
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await broker?.close()
    await telemetry?.flush()
    await vm?.close()
    await world?.close()
  })

  async function device(id: string): Promise<MqttClient> {
    const client = await connectWith(`mqtts://127.0.0.1:${broker.devicePort}`, world.certs.get(id)!, world.trust, id)
    clients.push(client)
    return client
  }

  const stored = async (device: string) => (await vm.exportSeries(`{__name__="telemetry_counter",device="${device}"}`))[0] ?? {values: [], timestamps: []}

  it('a QoS 1 PUBACK means stored in InfluxDB: the point is there when publish resolves', async () => {
    const d = await device('first')
    await d.publishAsync('devices/first/telemetry', payload(7), {qos: 1})
    expect(await stored('first')).toMatchObject({values: [7], timestamps: [T0 + 7000]})
  })

  it('InfluxDB down for 10 s mid-stream: no PUBACK while it is down, nothing lost after it is back', async () => {
    const d = await device('flow')
    const acks: Array<{seq: number; at: number}> = []
    const pending: Array<Promise<void>> = []
    let published = 0
    const publisher = setInterval(() => {
      const seq = published++
      pending.push(d.publishAsync('devices/flow/telemetry', payload(seq), {qos: 1}).then(() => void acks.push({seq, at: Date.now()})))
    }, 25)
    try {
      await sleep(2000)
      await vm.stop()
      const downAt = Date.now()
      const ackedBefore = acks.length
      await sleep(10_000)
      const upAt = Date.now()
      await vm.start()
      await sleep(2000)
      clearInterval(publisher)
      await Promise.all(pending)
      // A write already accepted when the server went down may be acknowledged just after: 500 ms of grace.
      const whileDown = acks.filter((a) => a.at > downAt + 500 && a.at < upAt)
      expect(whileDown, 'PUBACKs while InfluxDB was down').toEqual([])
      expect(ackedBefore).toBeGreaterThan(20)
      expect(published).toBeGreaterThan(ackedBefore + 200) // messages did arrive during the outage
      expect(acks).toHaveLength(published)
      expect(telemetry.ingest.stats.failures).toBeGreaterThan(0)
      expect(logs.some((l) => /influx telemetry write failed \(InfluxDB at http:\/\/127\.0\.0\.1:\d+\/? unreachable/.test(l))).toBe(true)
      const series = await stored('flow')
      expect(series.values).toEqual(Array.from({length: published}, (_, i) => i))
      expect(series.timestamps).toEqual(Array.from({length: published}, (_, i) => T0 + i * 1000))
    } finally {
      clearInterval(publisher)
    }
  }, 60_000)
})

/**
 * VictoriaMetrics ignores tokens; started with HTTP Basic Auth it answers 401 to the client's
 * `Authorization: Token …`, a real refusal from a real server (as InfluxDB answers a bad token).
 */
describe('InfluxDB refuses the token', () => {
  let world: PkiWorld
  let vm: RunningVictoriaMetrics
  const token = 'wrong-token-s3cret'

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'influx-refused', devices: ['refused']})
    vm = await startVictoriaMetrics({basicAuth: {username: 'iot', password: 'right'}})
  })

  afterAll(async () => {
    await vm?.close()
    await world?.close()
  })

  const settings = () => ({url: vm.url, token, org: 'acme', bucket: 'iot', labels: []})

  it('at start: exit 6 with the server\'s reason and a next step, the token never shown', async () => {
    const error = await openSinks({kinds: ['postgres', 'influx'], influx: settings()}, world.db, () => undefined).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(IotctlError)
    const e = error as IotctlError
    expect({code: e.code, exitCode: e.exitCode}).toEqual({code: 'E_INFLUX_REFUSED', exitCode: 6})
    expect(e.message).toMatch(/telemetry sink influx stopped: InfluxDB at http:\/\/127\.0\.0\.1:\d+\/? answered 401 Unauthorized/)
    expect(e.hint).toContain('--influx-token')
    expect(JSON.stringify({m: e.message, h: e.hint, d: e.data})).not.toContain(token)
  })

  it('mid-stream (a revoked token): the ingest stops at once, rejects the message, retries nothing', async () => {
    const sink = await createInfluxSink(settings(), {db: world.db})
    const fatal: IotctlError[] = []
    const service = createTelemetryService(world.db, () => undefined, {sinks: [sink], onFatal: (e) => fatal.push(e), retention: false, maxDelayMs: 1})
    const first = await service.handle('devices/refused/telemetry', Buffer.from(payload(1))).catch((e: unknown) => e)
    expect(first).toBeInstanceOf(IotctlError)
    expect((first as IotctlError).exitCode).toBe(6)
    expect(fatal.map((e) => e.code)).toEqual(['E_INFLUX_REFUSED'])
    expect(service.ingest.stats).toMatchObject({failures: 0, points: 0, batches: 0})
    // Later messages are refused without a write (the owner is stopping).
    await expect(service.handle('devices/refused/telemetry', Buffer.from(payload(2)))).rejects.toBe(fatal[0])
    await service.flush() // does not hang on the stopped ingest
    service.stop()
  })
})
