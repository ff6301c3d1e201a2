import {connect as tlsConnect, type TLSSocket} from 'node:tls'
import type {MqttClient} from 'mqtt'
import mqttPacket, {type Packet} from 'mqtt-packet'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

/** A raw, authenticated TLS connection and the MQTT packets the broker sent on it. */
interface RawConnection {
  socket: TLSSocket
  packets: Packet[]
  isClosed(): boolean
}

/**
 * Limits of the embedded broker, seen from real TLS clients holding iotctl-issued certificates:
 * keepalive enforcement (aedes closes a session silent for 1.5 × its keepalive) and the connection
 * token bucket (`connectRate`: excess CONNECTs get CONNACK 3, "server unavailable").
 * broker-acl.test.ts and broker-malformed.test.ts cover neither.
 */
describe('embedded broker: keepalive and connection rate limits', () => {
  let world: PkiWorld
  const brokers: RunningBroker[] = []
  const clients: MqttClient[] = []
  const raw: RawConnection[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'broker-limits', devices: ['sleepy', 'pinger', 'sensor'], operators: ['ops']})
  })

  afterAll(async () => {
    for (const conn of raw) conn.socket.destroy()
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    for (const broker of brokers) await broker.close()
    await world?.close()
  })

  async function start(connectRate?: number): Promise<RunningBroker> {
    const broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, connectRate})
    brokers.push(broker)
    return broker
  }

  async function client(broker: RunningBroker, name: string, listener: 'device' | 'service', clientId = name): Promise<MqttClient> {
    const port = listener === 'device' ? broker.devicePort : broker.servicePort
    const c = await connectWith(`mqtts://127.0.0.1:${port}`, world.certs.get(name)!, world.trust, clientId)
    clients.push(c)
    return c
  }

  /** A TLS connection with `name`'s certificate, MQTT spoken by hand. */
  function open(port: number, name: string): Promise<RawConnection> {
    const cert = world.certs.get(name)!
    return new Promise((resolve, reject) => {
      const packets: Packet[] = []
      let closed = false
      const parser = mqttPacket.parser({protocolVersion: 4})
      parser.on('packet', (packet: Packet) => packets.push(packet))
      const socket = tlsConnect({host: '127.0.0.1', port, cert: cert.certificate + cert.chain, key: cert.private_key!, ca: world.trust, servername: 'localhost'}, () => {
        const conn = {socket, packets, isClosed: () => closed}
        raw.push(conn)
        resolve(conn)
      })
      socket.on('data', (chunk: Buffer) => parser.parse(chunk))
      socket.on('close', () => (closed = true))
      socket.on('error', reject)
    })
  }

  const connectPacket = (clientId: string, keepalive: number, will?: {topic: string; payload: string}) => mqttPacket.generate({cmd: 'connect', protocolId: 'MQTT',
    protocolVersion: 4, clean: true, clientId, keepalive, ...(will ? {will: {...will, qos: 1, retain: false}} : {})} as Packet)
  const connack = (conn: RawConnection) => conn.packets.find((p) => p.cmd === 'connack') as (Packet & {returnCode: number}) | undefined

  describe('keepalive', () => {
    let broker: RunningBroker

    beforeAll(async () => {
      broker = await start()
    })

    it('a device that CONNECTs with keepalive 1 s and then sends nothing is disconnected by the broker, and its Will is delivered', async () => {
      const service = await client(broker, 'ops', 'service', 'ops-status')
      const statuses: string[] = []
      service.on('message', (topic, payload) => statuses.push(`${topic} ${payload.toString()}`))
      await service.subscribeAsync('devices/+/status', {qos: 1})

      const conn = await open(broker.devicePort, 'sleepy')
      conn.socket.write(connectPacket('sleepy', 1, {topic: 'devices/sleepy/status', payload: '{"state":"offline"}'}))
      await expect.poll(() => connack(conn)?.returnCode, {timeout: 5000}).toBe(0)
      // Silence: aedes allows 1.5 × keepalive, then closes the session (MQTT 3.1.1 §3.1.2.10).
      await expect.poll(conn.isClosed, {timeout: 10_000, interval: 100}).toBe(true)
      // The broker ended it, not the client: so the Will fires, as for any lost device.
      await expect.poll(() => statuses, {timeout: 5000}).toEqual(['devices/sleepy/status {"state":"offline"}'])
    })

    it('a device that keeps sending PINGREQ within its keepalive stays connected, and is disconnected once it stops', async () => {
      const conn = await open(broker.devicePort, 'pinger')
      conn.socket.write(connectPacket('pinger', 1))
      await expect.poll(() => connack(conn)?.returnCode, {timeout: 5000}).toBe(0)
      for (let i = 0; i < 8; i++) { // 4 s, several keepalive periods
        conn.socket.write(mqttPacket.generate({cmd: 'pingreq'} as Packet))
        await new Promise((r) => setTimeout(r, 500))
      }
      expect(conn.isClosed()).toBe(false)
      expect(conn.packets.filter((p) => p.cmd === 'pingresp').length).toBeGreaterThanOrEqual(6)
      await expect.poll(conn.isClosed, {timeout: 10_000, interval: 100}).toBe(true)
    })
  })

  describe('connection token bucket', () => {
    let broker: RunningBroker

    beforeAll(async () => {
      broker = await start(5)
    })

    it('with connectRate 5, a burst of 20 CONNECTs gets some CONNACK 3 (server unavailable); after 2 s connections succeed and deliver again', async () => {
      // The TLS handshakes first, so that the 20 CONNECTs themselves arrive as one burst.
      const burst = await Promise.all(Array.from({length: 20}, () => open(broker.servicePort, 'ops')))
      burst.forEach((conn, i) => conn.socket.write(connectPacket(`ops-burst-${i}`, 30)))
      await expect.poll(() => burst.filter((conn) => connack(conn)).length, {timeout: 10_000}).toBe(20)
      const codes = burst.map((conn) => connack(conn)!.returnCode)
      const accepted = codes.filter((c) => c === 0).length
      const refused = codes.filter((c) => c === 3).length
      expect(accepted + refused, `return codes ${codes.join(',')}`).toBe(20) // nothing but 0 and 3
      expect(accepted).toBeGreaterThanOrEqual(5) // the full bucket
      expect(refused).toBeGreaterThanOrEqual(5)
      // A refused connection is closed by the broker (MQTT 3.1.1 §3.2.2-5); an accepted one stays.
      await expect.poll(() => burst.filter((conn, i) => codes[i] === 3 && !conn.isClosed()).length, {timeout: 5000}).toBe(0)
      expect(burst.filter((conn, i) => codes[i] === 0 && conn.isClosed()).length).toBe(0)
      for (const conn of burst) conn.socket.destroy()

      // The bucket refills at 5 a second: after 2 s new sessions are accepted and work end to end.
      await new Promise((r) => setTimeout(r, 2000))
      const service = await client(broker, 'ops', 'service', 'ops-after')
      const seen: string[] = []
      service.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
      await service.subscribeAsync('devices/sensor/telemetry', {qos: 1})
      const sensor = await client(broker, 'sensor', 'device')
      await sensor.publishAsync('devices/sensor/telemetry', '{"ts":1,"seq":1,"metrics":{"t":20}}', {qos: 1})
      await expect.poll(() => seen, {timeout: 5000}).toEqual(['devices/sensor/telemetry {"ts":1,"seq":1,"metrics":{"t":20}}'])
    })
  })
})
