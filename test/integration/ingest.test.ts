import type {IClientOptions, MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {createTelemetryService, type TelemetryService} from '../../src/lib/telemetry/index.js'
import type {TestDatabase} from '../helpers/database.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

/** Devices publish through the real broker over mutual TLS; the ingest stores, rolls up, acknowledges. */
describe('telemetry ingest through the embedded broker', () => {
  let world: PkiWorld
  let db: TestDatabase
  let broker: RunningBroker
  let telemetry: TelemetryService
  const clients: MqttClient[] = []
  const ids = Array.from({length: 10}, (_, i) => `t${i}`)
  const T0 = Date.UTC(2026, 10, 24, 23, 58) // two minutes before midnight: two daily partitions, several buckets

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'ingest', devices: [...ids, 'willing', 'presence', 'pipelined']})
    db = world.db
    telemetry = createTelemetryService(db, () => undefined)
    broker = await startBroker({db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0,
      beforeAck: (topic, payload) => telemetry.handle(topic, payload), onPresence: (id, online) => void telemetry.presence(id, online)})
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await broker?.close()
    await telemetry?.flush()
    await world?.close()
  })

  async function device(id: string, extra: IClientOptions = {}): Promise<MqttClient> {
    const client = await connectWith(`mqtts://127.0.0.1:${broker.devicePort}`, world.certs.get(id)!, world.trust, id, extra)
    clients.push(client)
    return client
  }

  const payload = (i: number) => JSON.stringify({ts: T0 + i * 15_000, seq: i, metrics: {temperature: 20 + (i % 5), humidity: 40 + i}})
  const count = async (sql: string) => Number((await db.pool.query(sql)).rows[0].n)

  it('a QoS 1 PUBACK means stored: the point is in the database when publish resolves', async () => {
    const d = await device('t0')
    await d.publishAsync('devices/t0/telemetry', payload(0), {qos: 1})
    expect(await count("SELECT count(*) AS n FROM telemetry WHERE device_id = 't0'")).toBe(2)
  })

  it('pipelined QoS 1 messages share batches, and each is stored before its PUBACK', async () => {
    const d = await device('pipelined')
    const batchesBefore = telemetry.ingest.stats.batches
    await Promise.all(Array.from({length: 50}, (_, i) => d.publishAsync('devices/pipelined/telemetry', payload(i), {qos: 1})))
    expect(await count("SELECT count(*) AS n FROM telemetry WHERE device_id = 'pipelined'")).toBe(100)
    expect(telemetry.ingest.stats.batches - batchesBefore).toBeLessThan(50)
    await telemetry.flush()
    await db.pool.query("DELETE FROM telemetry WHERE device_id = 'pipelined'")
    for (const table of ['telemetry_1m', 'telemetry_1h', 'telemetry_1d']) await db.pool.query(`DELETE FROM ${table} WHERE device_id = 'pipelined'`)
  })

  it('10 devices × 40 messages land exactly once, redelivery counts nothing twice, rollups equal raw counts', async () => {
    const devices = await Promise.all(ids.map((id) => device(id)))
    const send = () => Promise.all(devices.map((d, n) => Promise.all(
      Array.from({length: 40}, (_, i) => d.publishAsync(`devices/${ids[n]}/telemetry`, payload(i), {qos: 1})))))
    await send()
    await send() // the same messages again, as after a lost PUBACK
    await expect.poll(() => telemetry.ingest.stats.messages, {timeout: 5000}).toBeGreaterThanOrEqual(1 + 10 * 40 * 2)
    await telemetry.flush()
    expect(await count('SELECT count(*) AS n FROM telemetry')).toBe(10 * 40 * 2)
    for (const table of ['telemetry_1m', 'telemetry_1h', 'telemetry_1d']) {
      expect(await count(`SELECT sum(count) AS n FROM ${table}`), table).toBe(10 * 40 * 2)
    }
    // 40 messages 15 s apart from 23:58 span two days: both daily partitions were created.
    expect(await count("SELECT count(*) AS n FROM pg_class WHERE relname IN ('telemetry_p20261124', 'telemetry_p20261125')")).toBe(2)
    expect(await count('SELECT count(*) AS n FROM telemetry_default')).toBe(0)
    const {rows} = await db.pool.query("SELECT count, sum, min, max FROM telemetry_1m WHERE device_id = 't3' AND metric = 'humidity' ORDER BY bucket LIMIT 1")
    expect(rows[0]).toEqual({count: '4', sum: 40 + 41 + 42 + 43, min: 40, max: 43})
    expect(await count("SELECT count(*) AS n FROM devices WHERE last_seen_at IS NOT NULL AND device_id LIKE 't%'")).toBe(10)
  })

  it('malformed payloads are counted and dropped without blocking the next message', async () => {
    const d = await device('t9')
    const rejectedBefore = telemetry.ingest.stats.rejected
    for (const bad of ['garbage', '{"ts":1}', '{"ts":1795575651619,"seq":1,"metrics":{"t":"x"}}', '']) {
      await d.publishAsync('devices/t9/telemetry', bad, {qos: 1})
    }
    await d.publishAsync('devices/t9/telemetry', JSON.stringify({ts: T0 + 3_600_000, seq: 99, metrics: {pressure: 1013}}), {qos: 1})
    await expect.poll(() => telemetry.ingest.stats.rejected - rejectedBefore, {timeout: 2000}).toBe(4)
    await expect.poll(() => count("SELECT count(*) AS n FROM telemetry WHERE device_id = 't9' AND metric = 'pressure'"), {timeout: 2000}).toBe(1)
    expect(await count("SELECT count(*) AS n FROM telemetry WHERE device_id = 't9' AND metric = 'pressure'")).toBe(1)
  })

  it('status messages and the Last Will set the device status', async () => {
    const d = await device('willing', {will: {topic: 'devices/willing/status', payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true}})
    await d.publishAsync('devices/willing/status', '{"state":"offline"}', {qos: 1})
    await expect.poll(async () => (await db.pool.query("SELECT status FROM devices WHERE device_id = 'willing'")).rows[0].status, {timeout: 2000}).toBe('offline')
    await d.publishAsync('devices/willing/status', '{"state":"online"}', {qos: 1, retain: true})
    await expect.poll(async () => (await db.pool.query("SELECT status FROM devices WHERE device_id = 'willing'")).rows[0].status, {timeout: 2000}).toBe('active')
    d.stream.destroy() // an unclean disconnect: the broker publishes the Will
    await expect.poll(async () => (await db.pool.query("SELECT status FROM devices WHERE device_id = 'willing'")).rows[0].status, {timeout: 5000}).toBe('offline')
  })

  it('connecting marks a device active and disconnecting offline; a session takeover keeps it active', async () => {
    const status = async () => (await db.pool.query("SELECT status FROM devices WHERE device_id = 'presence'")).rows[0].status as string
    await db.pool.query("UPDATE devices SET status = 'offline' WHERE device_id = 'presence'")
    const first = await device('presence')
    await expect.poll(status, {timeout: 3000}).toBe('active')
    const second = await device('presence') // same client id: the broker closes the first session
    await expect.poll(() => first.connected, {timeout: 3000}).toBe(false)
    await new Promise((r) => setTimeout(r, 300))
    expect(await status()).toBe('active')
    await second.endAsync()
    await expect.poll(status, {timeout: 3000}).toBe('offline')
  })

  it('the running ingest enforces retention: a raw day partition past the policy is dropped whole', async () => {
    const {withTransaction} = await import('../../src/lib/db/pool.js')
    const {writeTelemetry} = await import('../../src/lib/telemetry/store.js')
    const old = new Date(Date.now() - 20 * 86_400_000)
    await withTransaction(db.pool, db.url, (c) => writeTelemetry(c, [{device_id: 't1', metric: 'old', ts: old.toISOString(), value: 1, seq: 1}]))
    const day = old.toISOString().slice(0, 10).replaceAll('-', '')
    const exists = () => count(`SELECT count(*) AS n FROM pg_class WHERE relname = 'telemetry_p${day}'`)
    expect(await exists()).toBe(1)
    const logs: string[] = []
    const service = createTelemetryService(db, (l) => logs.push(l), {retentionDelayMs: 50})
    try {
      await expect.poll(exists, {timeout: 10_000}).toBe(0)
      expect(logs.join('\n')).toContain(`telemetry_p${day}`)
      expect(await count("SELECT count(*) AS n FROM telemetry WHERE metric = 'old'")).toBe(0)
      expect(await count("SELECT count(*) AS n FROM telemetry WHERE metric <> 'old'")).toBeGreaterThan(0) // recent data stays
    } finally {
      service.stop()
    }
  })
})
