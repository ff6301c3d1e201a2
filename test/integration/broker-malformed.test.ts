import {connect as tlsConnect, type TLSSocket} from 'node:tls'
import type {MqttClient} from 'mqtt'
import mqttPacket from 'mqtt-packet'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

/**
 * The broker never crashes on malformed input: hand-made vectors and seeded random mutations of
 * valid packets are sent by authenticated TLS clients; each bad connection is closed and a canary
 * session keeps exchanging messages throughout.
 */
describe('embedded broker: malformed packets', () => {
  let world: PkiWorld
  let broker: RunningBroker
  let canary: MqttClient
  let received = 0
  const logs: string[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'broker-fuzz', devices: ['canary', 'fuzzer', 'a-device-id-longer-than-the-23-characters-of-mqtt'], operators: ['ops']})
    broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, log: (l) => logs.push(l)})
    canary = await connectDevice('canary')
    await canary.subscribeAsync('devices/canary/commands', {qos: 0})
    canary.on('message', () => received++)
  })

  afterAll(async () => {
    await canary?.endAsync(true)
    await broker?.close()
    await world?.close()
  })

  function tlsOptions(name: string) {
    const cert = world.certs.get(name)!
    return {cert: cert.certificate + cert.chain, key: cert.private_key!, ca: world.trust, servername: 'localhost'}
  }

  const connectDevice = (name: string) => connectWith(`mqtts://127.0.0.1:${broker.devicePort}`, world.certs.get(name)!, world.trust, name)

  /**
   * Send raw bytes on an authenticated TLS connection; resolves when the broker closes it (or after
   * a timeout). With `afterConnack`, the first chunk (a CONNECT) is sent alone and the rest only once
   * the broker answered it, as a connected client would.
   */
  function sendRaw(chunks: Buffer[], waitMs = 1500, afterConnack = false): Promise<'closed' | 'open'> {
    return new Promise((resolve) => {
      const socket: TLSSocket = tlsConnect({host: '127.0.0.1', port: broker.devicePort, ...tlsOptions('fuzzer')}, () => {
        for (const chunk of afterConnack ? chunks.slice(0, 1) : chunks) socket.write(chunk)
      })
      if (afterConnack) socket.once('data', () => chunks.slice(1).forEach((chunk) => socket.write(chunk)))
      const timer = setTimeout(() => {
        socket.destroy()
        resolve('open')
      }, waitMs)
      socket.on('error', () => undefined)
      socket.on('close', () => {
        clearTimeout(timer)
        resolve('closed')
      })
    })
  }

  const connectPacket = (clientId = 'fuzzer') => mqttPacket.generate({cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30} as never)

  /** The canary receives a command published by a service: the broker still accepts and routes. */
  async function canaryStillWorks(): Promise<void> {
    const before = received
    const ops = await connectWith(`mqtts://127.0.0.1:${broker.servicePort}`, world.certs.get('ops')!, world.trust, 'ops')
    await ops.publishAsync('devices/canary/commands', 'ping', {qos: 1})
    await ops.endAsync()
    await expect.poll(() => received, {timeout: 3000}).toBe(before + 1)
  }

  it('accepts device ids longer than 23 characters (MQTT 3.1.1 §3.1.3.1 allows it)', async () => {
    const client = await connectDevice('a-device-id-longer-than-the-23-characters-of-mqtt')
    expect(client.connected).toBe(true)
    await client.endAsync()
  })

  it.each([
    ['reserved packet type 0', Buffer.from([0x00, 0x00])],
    ['reserved packet type 15', Buffer.from([0xf0, 0x00])],
    ['remaining length longer than 4 bytes', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])],
    ['PUBLISH before CONNECT', Buffer.from([0x30, 0x05, 0x00, 0x01, 0x61, 0x62, 0x63])],
    ['CONNECT with a bad protocol name', Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x58, 0x58, 0x04, 0x02, 0x00, 0x1e, 0x00, 0x00])],
  ])('%s: the connection is closed', async (_name, bytes) => {
    expect(await sendRaw([bytes])).toBe('closed')
    await canaryStillWorks()
  })

  it.each([
    ['a second CONNECT', () => [connectPacket(), connectPacket()]],
    ['a PUBLISH with a wildcard in its topic', () => [connectPacket(),
      mqttPacket.generate({cmd: 'publish', topic: 'devices/fuzzer/#', payload: 'x', qos: 0, retain: false, dup: false} as never)]],
    ['a PUBLISH whose topic is invalid UTF-8', () => [connectPacket(), Buffer.from([0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x61, 0x62])]],
  ])('after a valid CONNECT, %s closes the connection', async (_name, packets) => {
    expect(await sendRaw(packets(), 3000, true)).toBe('closed')
    await canaryStillWorks()
  })

  it('a packet over the 64 KiB limit closes the connection; one under it does not', async () => {
    const publish = (bytes: number) => mqttPacket.generate({cmd: 'publish', topic: 'devices/fuzzer/telemetry', payload: Buffer.alloc(bytes, 0x20), qos: 0, retain: false, dup: false} as never)
    expect(await sendRaw([connectPacket(), publish(70 * 1024)], 1500, true)).toBe('closed')
    expect(await sendRaw([connectPacket(), publish(60 * 1024)], 800, true)).toBe('open')
    expect(logs.some((line) => /exceeds the limit of 65536/.test(line))).toBe(true)
    await canaryStillWorks()
  })

  it('400 seeded random mutations of valid packets never stop the broker', async () => {
    let seed = 42
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff)
    const templates = [
      connectPacket(),
      mqttPacket.generate({cmd: 'publish', topic: 'devices/fuzzer/telemetry', payload: '{"ts":1,"seq":1,"metrics":{"t":1}}', qos: 1, messageId: 7, retain: false, dup: false} as never),
      mqttPacket.generate({cmd: 'subscribe', messageId: 3, subscriptions: [{topic: 'devices/fuzzer/commands', qos: 1}]} as never),
    ]
    const runs: Array<Promise<'closed' | 'open'>> = []
    for (let i = 0; i < 400; i++) {
      const bytes = Buffer.concat(templates.slice(0, 1 + Math.floor(random() * 3)))
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
      runs.push(sendRaw([bytes], 300))
      if (runs.length % 20 === 0) await Promise.all(runs.splice(0)) // bounded concurrency
    }
    await Promise.all(runs)
    // The canary session survived, and the broker still accepts new sessions and routes.
    expect(canary.connected).toBe(true)
    await canaryStillWorks()
  }, 120_000)
})
