import {connect as tlsConnect, type TLSSocket} from 'node:tls'
import fc from 'fast-check'
import type {MqttClient} from 'mqtt'
import mqttPacket, {type Packet} from 'mqtt-packet'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {devicePublishAllowed, deviceSubscribeAllowed} from '../../src/lib/mqtt/topics.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

/** One raw, authenticated TLS connection of the `fuzzer` device and everything the broker sent it. */
interface RawConnection {
  socket: TLSSocket
  received: Buffer[]
  /** Resolves when the socket closed (by the broker, or by us). */
  closed: Promise<void>
  isClosed(): boolean
}

/** A mutation of one packet of a sequence (`target` picks the packet, modulo their count). */
type Mutation =
  | {kind: 'flip'; target: number; at: number; bit: number}
  | {kind: 'set'; target: number; at: number; value: number}
  | {kind: 'truncate'; target: number; at: number}
  | {kind: 'insert'; target: number; at: number; bytes: Uint8Array}
  | {kind: 'remaining-length'; target: number; bytes: Uint8Array}

/** Apply one mutation to a packet (a copy); `remaining-length` replaces the whole Remaining Length field. */
function mutate(packet: Buffer, mutation: Mutation): Buffer {
  const at = (n: number) => (packet.length === 0 ? 0 : mutation.kind === 'insert' ? n % (packet.length + 1) : n % packet.length)
  switch (mutation.kind) {
    case 'flip': {
      const copy = Buffer.from(packet)
      if (copy.length > 0) copy[at(mutation.at)]! ^= 1 << mutation.bit
      return copy
    }
    case 'set': {
      const copy = Buffer.from(packet)
      if (copy.length > 0) copy[at(mutation.at)] = mutation.value
      return copy
    }
    case 'truncate':
      return packet.subarray(0, at(mutation.at))
    case 'insert':
      return Buffer.concat([packet.subarray(0, at(mutation.at)), Buffer.from(mutation.bytes), packet.subarray(at(mutation.at))])
    case 'remaining-length': {
      let end = 1
      while (end < packet.length && end < 5 && packet[end]! & 0x80) end++
      return Buffer.concat([packet.subarray(0, 1), Buffer.from(mutation.bytes), packet.subarray(end + 1)])
    }
  }
}

/** PUBLISH packets in what the broker sent (MQTT 3.1.1); undecodable bytes are ignored. */
function publishedTo(chunks: Buffer[]): string[] {
  const topics: string[] = []
  const parser = mqttPacket.parser({protocolVersion: 4})
  parser.on('packet', (packet: Packet) => {
    if (packet.cmd === 'publish') topics.push(packet.topic)
  })
  parser.on('error', () => undefined)
  for (const chunk of chunks) parser.parse(chunk)
  return topics
}

const FUZZER = 'fuzzer'
const ownReceive = (topic: string) => deviceSubscribeAllowed(FUZZER, topic)

/**
 * Property-based robustness of the embedded broker (aedes behind mutual TLS): arbitrary mutations
 * (bit flips, byte overwrites, truncations, insertions, random Remaining Length bytes) of valid
 * CONNECT / PUBLISH / SUBSCRIBE / UNSUBSCRIBE / PINGREQ packets, sent by an authenticated device,
 * never stop the broker: a canary device still receives its commands after every run, nothing is
 * delivered outside the topic contract, and every connection is closed by the broker or harmless.
 */
describe('embedded broker: property-based fuzzing of MQTT packets', () => {
  let world: PkiWorld
  let broker: RunningBroker
  let canary: MqttClient
  let ops: MqttClient
  const canaryGot: string[] = []
  /** What the service observer saw on devices/# (topic + payload prefix). */
  const observed: string[] = []
  const logs: string[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'broker-pbt', devices: ['canary', FUZZER], operators: ['ops']})
    broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, log: (l) => logs.push(l)})
    canary = await connectWith(`mqtts://127.0.0.1:${broker.devicePort}`, world.certs.get('canary')!, world.trust, 'canary')
    await canary.subscribeAsync('devices/canary/commands', {qos: 1})
    canary.on('message', (_topic, payload) => canaryGot.push(payload.toString()))
    ops = await connectWith(`mqtts://127.0.0.1:${broker.servicePort}`, world.certs.get('ops')!, world.trust, 'ops-observer')
    ops.on('message', (topic) => observed.push(topic))
    await ops.subscribeAsync('devices/#', {qos: 1})
  })

  /** Every raw connection opened, ended in afterAll whatever happened. */
  const rawConnections: RawConnection[] = []

  afterAll(async () => {
    for (const conn of rawConnections) conn.socket.destroy()
    await canary?.endAsync(true)
    await ops?.endAsync(true)
    await broker?.close()
    await world?.close()
  })

  /** Open an authenticated TLS connection as the fuzzer device (no MQTT yet). */
  function open(): Promise<RawConnection> {
    const cert = world.certs.get(FUZZER)!
    return new Promise((resolve, reject) => {
      const received: Buffer[] = []
      let isClosed = false
      const socket = tlsConnect({host: '127.0.0.1', port: broker.devicePort, cert: cert.certificate + cert.chain, key: cert.private_key!, ca: world.trust,
        servername: 'localhost'}, () => {
        const conn = {socket, received, closed, isClosed: () => isClosed}
        rawConnections.push(conn)
        resolve(conn)
      })
      const closed = new Promise<void>((done) => socket.once('close', () => {
        isClosed = true
        done()
      }))
      socket.on('data', (chunk: Buffer) => received.push(chunk))
      socket.on('error', reject)
    })
  }

  const waitFor = async (condition: () => boolean, ms: number) => {
    for (const deadline = Date.now() + ms; !condition() && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 10))
  }

  const connectPacket = (keepalive: number, will?: {topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean}) =>
    mqttPacket.generate({cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: FUZZER, keepalive, ...(will ? {will} : {})} as Packet)

  let pings = 0
  /** A service publishes a command to the canary: it must arrive (the broker still accepts, authorises and routes). */
  async function canaryReceives(): Promise<boolean> {
    const ping = `ping-${++pings}`
    await ops.publishAsync('devices/canary/commands', ping, {qos: 1})
    await waitFor(() => canaryGot.includes(ping), 5000)
    return canaryGot.includes(ping)
  }

  // Topics and filters: the fuzzer's own, another device's, wildcards, $ topics and arbitrary strings.
  const topic = fc.oneof(
    fc.constantFrom('devices/fuzzer/telemetry', 'devices/fuzzer/status', 'devices/fuzzer/commands', 'devices/fuzzer/shadow/delta',
      'devices/canary/commands', 'devices/canary/telemetry', 'devices/+/commands', 'devices/fuzzer/#', '#', '+', '$SYS/#', '$share/iotctl-x/devices/+/commands'),
    fc.string({minLength: 1, maxLength: 24}))
  const qos = fc.constantFrom(0 as const, 1 as const, 2 as const)
  const messageId = fc.integer({min: 1, max: 65_535})
  const packet: fc.Arbitrary<Buffer> = fc.oneof(
    fc.record({keepalive: fc.constantFrom(1, 2), will: fc.option(fc.record({topic, payload: fc.uint8Array({maxLength: 16}).map((b) => Buffer.from(b)), qos, retain: fc.boolean()}), {nil: undefined})})
      .map(({keepalive, will}) => connectPacket(keepalive, will)),
    fc.record({topic, payload: fc.uint8Array({maxLength: 48}), qos, retain: fc.boolean(), dup: fc.boolean(), messageId})
      .map((p) => mqttPacket.generate({cmd: 'publish', ...p, payload: Buffer.from(p.payload)} as Packet)),
    fc.record({messageId, subscriptions: fc.array(fc.record({topic, qos}), {minLength: 1, maxLength: 3})})
      .map((p) => mqttPacket.generate({cmd: 'subscribe', ...p} as Packet)),
    fc.record({messageId, unsubscriptions: fc.array(topic, {minLength: 1, maxLength: 3})})
      .map((p) => mqttPacket.generate({cmd: 'unsubscribe', ...p} as Packet)),
    fc.constant(null).map(() => mqttPacket.generate({cmd: 'pingreq'} as Packet)),
  )
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({kind: fc.constant('flip' as const), target: fc.nat(), at: fc.nat(), bit: fc.integer({min: 0, max: 7})}),
    fc.record({kind: fc.constant('set' as const), target: fc.nat(), at: fc.nat(), value: fc.integer({min: 0, max: 255})}),
    fc.record({kind: fc.constant('truncate' as const), target: fc.nat(), at: fc.nat()}),
    fc.record({kind: fc.constant('insert' as const), target: fc.nat(), at: fc.nat(), bytes: fc.uint8Array({minLength: 1, maxLength: 8})}),
    fc.record({kind: fc.constant('remaining-length' as const), target: fc.nat(), bytes: fc.uint8Array({minLength: 1, maxLength: 5})}),
  )

  it('no mutation of valid packets, before or after a CONNACK, stops the broker or breaks the topic contract', async () => {
    /** Connections the broker must close on its own: CONNECTed with keepalive 1 s, then fed only mutated bytes. */
    const mustClose: Array<{conn: RawConnection; bytes: string}> = []
    /** Connections whose (mutated) CONNECT decides their fate: closed, or an ordinary fuzzer session. */
    const mayStay: RawConnection[] = []
    const everyConnection: RawConnection[] = []

    await fc.assert(fc.asyncProperty(
      fc.boolean(), // true: a valid CONNECT first, answered, then the mutated packets; false: the mutated CONNECT itself opens
      fc.array(packet, {minLength: 1, maxLength: 3}),
      fc.array(mutation, {minLength: 1, maxLength: 4}),
      async (afterConnack, packets, mutations) => {
        const sequence = afterConnack ? packets : [connectPacket(1), ...packets]
        const mutated = [...sequence]
        for (const m of mutations) mutated[m.target % mutated.length] = mutate(mutated[m.target % mutated.length]!, m)
        const bytes = Buffer.concat(mutated)
        const conn = await open()
        everyConnection.push(conn)
        if (afterConnack) {
          conn.socket.write(connectPacket(1))
          await waitFor(() => conn.received.length > 0, 5000)
          expect(conn.received[0]?.subarray(0, 4), 'CONNACK accepted').toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]))
          mustClose.push({conn, bytes: bytes.toString('hex')})
        } else {
          mayStay.push(conn)
        }
        if (bytes.length > 0) conn.socket.write(bytes)
        await waitFor(conn.isClosed, 150)
        // While the mutated connection may still be open, the broker accepts, authorises and routes.
        expect(await canaryReceives(), 'the canary still receives its commands').toBe(true)
        // Nothing outside the contract was delivered: the fuzzer's publishes reach services only on its
        // device → cloud topics, and the fuzzer itself receives nothing but its own cloud → device topics.
        expect(observed.filter((t) => t !== 'devices/canary/commands' && !devicePublishAllowed(FUZZER, t))).toEqual([])
        expect(publishedTo(conn.received).filter((t) => !ownReceive(t))).toEqual([])
      },
    ), {seed: 20_251_104, numRuns: 150, endOnFailure: true})

    expect(mustClose.length).toBeGreaterThan(20) // both kinds of runs were generated
    expect(mayStay.length).toBeGreaterThan(20)
    // Keepalive 1 s: the broker closes every connection it still has within 1.5 s of its last packet.
    await expect.poll(() => mustClose.filter((c) => !c.conn.isClosed()).map((c) => c.bytes), {timeout: 15_000, interval: 250}).toEqual([])
    // The rest are either closed or plain fuzzer sessions; the checks above showed them harmless. End them now.
    for (const conn of mayStay) conn.socket.destroy()
    await Promise.all(everyConnection.map((c) => c.closed))
    // Wills set by mutated CONNECTs fire now: still nothing outside the contract, and the broker still routes.
    expect(await canaryReceives()).toBe(true)
    expect(observed.filter((t) => t !== 'devices/canary/commands' && !devicePublishAllowed(FUZZER, t))).toEqual([])
    expect(everyConnection.flatMap((c) => publishedTo(c.received)).filter((t) => !ownReceive(t))).toEqual([])
    expect(canary.connected && ops.connected).toBe(true)
  }, 300_000)

  // broker-malformed.test.ts already sends reserved types 0 and 15, a 5-byte Remaining Length, PUBLISH
  // before CONNECT, a second CONNECT, a wildcard and an invalid UTF-8 PUBLISH topic; these are the rest.
  it.each([
    // MQTT 3.1.1 §3.8.3-4: a requested QoS of 3 or non-zero reserved bits make the SUBSCRIBE malformed.
    ['a SUBSCRIBE requesting QoS 3', 0x03],
    ['a SUBSCRIBE with reserved option bits set', 0xf1],
  ])('after a valid CONNECT, %s closes the connection and grants nothing', async (_name, options) => {
    const filter = Buffer.from('devices/fuzzer/commands')
    const body = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, filter.length]), filter, Buffer.from([options])])
    const conn = await open()
    conn.socket.write(connectPacket(30))
    await waitFor(() => conn.received.length > 0, 5000)
    expect(conn.received[0]?.subarray(0, 4)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]))
    conn.socket.write(Buffer.concat([Buffer.from([0x82, body.length]), body]))
    await expect.poll(conn.isClosed, {timeout: 5000}).toBe(true)
    // No SUBACK granted the malformed request.
    expect(Buffer.concat(conn.received).subarray(4)).toEqual(Buffer.alloc(0))
    expect(await canaryReceives()).toBe(true)
  })
})
