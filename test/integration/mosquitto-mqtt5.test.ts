import type {IClientOptions, IPublishPacket, MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {startMosquitto, type RunningMosquitto} from '../helpers/mosquitto.js'

const V5: IClientOptions = {protocolVersion: 5}
const settle = (ms = 500) => new Promise((r) => setTimeout(r, ms))

interface Seen {
  topic: string
  payload: string
  packet: IPublishPacket
}

/**
 * Every device path of the topic contract (DESIGN.md §3) over MQTT 5, against Debian's Mosquitto 2
 * started with the configuration `iotctl broker config mosquitto` writes, with real TLS 1.3 and
 * iotctl-issued certificates. Checked by what is delivered, not by acknowledgement codes. Without
 * mosquitto installed these tests fail, never skip.
 */
describe('Mosquitto with `iotctl broker config mosquitto`, MQTT 5 clients', () => {
  let world: PkiWorld
  let mosquitto: RunningMosquitto
  const clients: MqttClient[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'mosquitto5',
      devices: ['p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'p10'], operators: ['ingest', 'controller'], revoked: ['p5']})
    mosquitto = await startMosquitto(world)
  }, 120_000)

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await mosquitto?.stop()
    await world?.close()
  })

  async function connect(name: string, listener: 'device' | 'service' = 'device', extra: IClientOptions & {clientId?: string} = {}): Promise<MqttClient> {
    const port = listener === 'device' ? mosquitto.devicePort : mosquitto.servicePort
    const {clientId = name, ...options} = extra
    const client = await connectWith(`mqtts://127.0.0.1:${port}`, world.certs.get(name)!, world.trust, clientId, {...V5, ...options})
    clients.push(client)
    return client
  }

  /** An MQTT 5 service session that records what it receives on `filter`. */
  async function observer(filter: string, name = 'ingest'): Promise<{client: MqttClient; seen: Seen[]}> {
    const client = await connect(name, 'service')
    const seen: Seen[] = []
    client.on('message', (topic, payload, packet) => seen.push({topic, payload: payload.toString(), packet}))
    await client.subscribeAsync(filter, {qos: 1})
    return {client, seen}
  }

  /** Messages a service sees on `filter` while `act` runs, plus a grace period. */
  async function observe(filter: string, act: () => Promise<unknown>): Promise<string[]> {
    const {client, seen} = await observer(filter)
    await act()
    await settle()
    await client.endAsync()
    return seen.map((m) => `${m.topic} ${m.payload}`)
  }

  it('a device publishes its own telemetry and status (QoS 0, 1, retained) and the service receives them', async () => {
    const p1 = await connect('p1')
    const seen = await observe('devices/#', async () => {
      await p1.publishAsync('devices/p1/telemetry', '{"ts":1,"seq":1,"metrics":{"t":20}}', {qos: 0})
      await p1.publishAsync('devices/p1/telemetry', '{"ts":2,"seq":2,"metrics":{"t":21}}', {qos: 1, properties: {contentType: 'application/json'}})
      await p1.publishAsync('devices/p1/status', '{"state":"online","ts":3}', {qos: 1, retain: true})
      for (const leaf of ['commands/ack', 'shadow/update', 'shadow/get', 'ota/progress']) await p1.publishAsync(`devices/p1/${leaf}`, leaf, {qos: 1})
    })
    expect(seen).toEqual([
      'devices/p1/telemetry {"ts":1,"seq":1,"metrics":{"t":20}}',
      'devices/p1/telemetry {"ts":2,"seq":2,"metrics":{"t":21}}',
      'devices/p1/status {"state":"online","ts":3}',
      'devices/p1/commands/ack commands/ack',
      'devices/p1/shadow/update shadow/update',
      'devices/p1/shadow/get shadow/get',
      'devices/p1/ota/progress ota/progress',
    ])
    // The retained status is there for a service that subscribes later.
    const later = await observer('devices/p1/status')
    await expect.poll(() => later.seen.map((m) => `${m.payload} retain=${m.packet.retain}`), {timeout: 5000})
      .toEqual(['{"state":"online","ts":3} retain=true'])
    await later.client.publishAsync('devices/p1/status', '', {qos: 1, retain: true}) // clear it for the other tests
    await later.client.endAsync()
  })

  it('a publish into another device\'s subtree, in a cloud → device direction or outside the contract is never delivered', async () => {
    const p2 = await connect('p2')
    const seen = await observe('devices/#', async () => {
      for (const topic of ['devices/p1/telemetry', 'devices/p1/status', 'devices/p2/commands', 'devices/p2/shadow/delta', 'devices/p2/firmware',
        'devices/p2/shadow/update/accepted', 'devices/p2/other', 'devices/p2', 'elsewhere']) {
        await p2.publishAsync(topic, 'x', {qos: 1}).catch(() => undefined)
        await p2.publishAsync(topic, 'x', {qos: 0}).catch(() => undefined)
      }
    })
    expect(seen).toEqual([])
    // The session survived the denied publishes (MQTT 5 answers them with a reason code) and still works.
    expect(await observe('devices/#', () => p2.publishAsync('devices/p2/telemetry', 'still here', {qos: 1}))).toEqual(['devices/p2/telemetry still here'])
  })

  it('a device subscribed to its own commands and shadow/delta receives them, including a retained delta', async () => {
    const controller = await connect('controller', 'service')
    await controller.publishAsync('devices/p3/shadow/delta', '{"state":{"fan":"on"},"version":4}', {qos: 1, retain: true})
    const p3 = await connect('p3')
    const received: string[] = []
    p3.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`))
    await p3.subscribeAsync(['devices/p3/commands', 'devices/p3/shadow/delta', 'devices/p3/firmware', 'devices/p3/shadow/get/accepted'], {qos: 1})
    await expect.poll(() => received, {timeout: 5000}).toEqual(['devices/p3/shadow/delta {"state":{"fan":"on"},"version":4}'])
    await controller.publishAsync('devices/p3/commands', '{"id":"c1"}', {qos: 1})
    await controller.publishAsync('devices/p3/firmware', '{"version":"2.0.0"}', {qos: 1})
    await controller.publishAsync('devices/p3/shadow/get/accepted', '{"state":{}}', {qos: 1})
    await expect.poll(() => received.length, {timeout: 5000}).toBe(4)
    expect(received.slice(1).sort()).toEqual([
      'devices/p3/commands {"id":"c1"}', 'devices/p3/firmware {"version":"2.0.0"}', 'devices/p3/shadow/get/accepted {"state":{}}'])
    await controller.publishAsync('devices/p3/shadow/delta', '', {qos: 1, retain: true})
  })

  it('a device\'s subscriptions to another device\'s topics, or to its own device → cloud topics, never deliver', async () => {
    const p4 = await connect('p4')
    const received: string[] = []
    p4.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`))
    for (const filter of ['devices/p1/commands', 'devices/p1/shadow/delta', 'devices/p1/firmware', 'devices/p1/telemetry', 'devices/p4/telemetry', 'devices/p4/status']) {
      await p4.subscribeAsync(filter, {qos: 1}).catch(() => undefined)
    }
    const controller = await connect('controller', 'service')
    const p1 = await connect('p1')
    await controller.publishAsync('devices/p1/commands', 'for p1', {qos: 1})
    await controller.publishAsync('devices/p1/shadow/delta', 'delta for p1', {qos: 1})
    await controller.publishAsync('devices/p1/firmware', 'firmware for p1', {qos: 1})
    await p1.publishAsync('devices/p1/telemetry', 'p1 reading', {qos: 1})
    await p4.publishAsync('devices/p4/telemetry', 'own reading', {qos: 1})
    await p4.publishAsync('devices/p4/status', 'own status', {qos: 1})
    await settle()
    expect(received).toEqual([])
    // The same session, once subscribed to its own exact topic, does receive: the silence above is the ACL.
    await p4.subscribeAsync('devices/p4/commands', {qos: 1})
    await controller.publishAsync('devices/p4/commands', 'exact', {qos: 1})
    await expect.poll(() => received, {timeout: 5000}).toEqual(['devices/p4/commands exact'])
  })

  it('a device\'s wildcard subscriptions never deliver another device\'s messages (Mosquitto grants them, then checks read access per message)', async () => {
    const p4 = await connect('p4')
    const received: string[] = []
    p4.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`))
    const filters = ['devices/+/commands', 'devices/p4/#', 'devices/p4/+', 'devices/p4/shadow/+', 'devices/#', '#', '+/p4/commands', '+/+/+']
    for (const filter of filters) await p4.subscribeAsync(filter, {qos: 1}).catch(() => undefined)
    const controller = await connect('controller', 'service')
    await controller.publishAsync('devices/p1/commands', 'for p1', {qos: 1})
    await controller.publishAsync('devices/p1/shadow/delta', 'delta for p1', {qos: 1})
    await controller.publishAsync('devices/p4/commands', 'for p4', {qos: 1})
    await settle()
    // Unlike the embedded broker (SUBACK 0x80, docs/PROTOCOL.md), Mosquitto 2.0 accepts the filters;
    // its pattern ACL still lets only p4's own cloud → device topics through.
    expect(received.length).toBeGreaterThan(0)
    expect(new Set(received)).toEqual(new Set(['devices/p4/commands for p4']))
  })

  it('a revoked certificate is refused (crlfile); a device certificate cannot use the service listener, nor a service one the device listener', async () => {
    await expect(connect('p5')).rejects.toThrow()
    await expect(connect('p1', 'service')).rejects.toThrow()
    await expect(connect('ingest', 'device')).rejects.toThrow()
  })

  it('use_username_as_clientid: a client id other than the CN is replaced by the CN, so the certificate decides the identity', async () => {
    // Mosquitto does not refuse the mismatching id (the embedded broker answers "identifier rejected"):
    // it overrides it with the username, which use_identity_as_username made the certificate CN.
    const p1 = await connect('p1')
    const p6 = await connect('p6', 'device', {clientId: 'p1'})
    // It acts as p6, not as the client id it claimed: p6's topics work, p1's do not.
    expect(await observe('devices/#', async () => {
      await p6.publishAsync('devices/p1/telemetry', 'claims p1', {qos: 1}).catch(() => undefined)
      await p6.publishAsync('devices/p6/telemetry', 'is p6', {qos: 1})
    })).toEqual(['devices/p6/telemetry is p6'])
    // Its session is "p6", not "p1": the real p1, connected before, was not taken over and still works.
    expect(p1.connected).toBe(true)
    expect(await observe('devices/#', () => p1.publishAsync('devices/p1/telemetry', 'p1 alive', {qos: 1}))).toEqual(['devices/p1/telemetry p1 alive'])
    // And a second connection with p6's certificate, under yet another client id, takes over that "p6" session.
    const p6again = await connect('p6', 'device', {clientId: 'something-else'})
    await expect.poll(() => p6.connected, {timeout: 5000}).toBe(false)
    expect([p6again.connected, p1.connected]).toEqual([true, true])
  })

  it('the MQTT 5 Will on devices/ID/status (with will properties) is delivered when the device drops; a normal DISCONNECT sends none', async () => {
    const {client: service, seen} = await observer('devices/+/status')
    const p7 = await connect('p7', 'device', {will: {topic: 'devices/p7/status', payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true,
      properties: {willDelayInterval: 1, messageExpiryInterval: 3600, contentType: 'application/json', payloadFormatIndicator: true, userProperties: {reason: 'lost'}}}})
    await p7.publishAsync('devices/p7/status', '{"state":"online"}', {qos: 1, retain: true})
    await expect.poll(() => seen.map((m) => m.payload), {timeout: 5000}).toEqual(['{"state":"online"}'])
    p7.stream.destroy() // the device drops: no DISCONNECT
    await expect.poll(() => seen.length, {timeout: 15_000}).toBe(2)
    const will = seen[1]!
    expect({topic: will.topic, payload: will.payload, contentType: will.packet.properties?.contentType, userProperties: will.packet.properties?.userProperties})
      .toEqual({topic: 'devices/p7/status', payload: '{"state":"offline"}', contentType: 'application/json', userProperties: {reason: 'lost'}})
    // Retained as status is: a service that subscribes later sees the device offline.
    const later = await observer('devices/p7/status', 'controller')
    await expect.poll(() => later.seen.map((m) => `${m.payload} retain=${m.packet.retain}`), {timeout: 5000}).toEqual(['{"state":"offline"} retain=true'])

    // A device that says goodbye with a normal DISCONNECT (reason 0) leaves no Will.
    const p10 = await connect('p10', 'device', {will: {topic: 'devices/p10/status', payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: false}})
    await p10.endAsync()
    await settle(1500)
    expect(seen.map((m) => m.topic)).toEqual(['devices/p7/status', 'devices/p7/status'])
    await later.client.publishAsync('devices/p7/status', '', {qos: 1, retain: true})
    await later.client.endAsync()
    await service.endAsync()
  })

  it('a Will aimed at another device\'s subtree (or a cloud → device topic) is never delivered, while one on its own status is', async () => {
    const {client: service, seen} = await observer('devices/#')
    const will = (topic: string) => ({will: {topic, payload: Buffer.from(`{"state":"offline","will":"${topic}"}`), qos: 1 as const, retain: true,
      properties: {willDelayInterval: 0, contentType: 'application/json', userProperties: {forged: 'maybe'}}}})
    for (const topic of ['devices/p1/status', 'devices/p8/commands', 'devices/p8/shadow/delta']) {
      // Mosquitto may refuse such a CONNECT or accept it and drop the Will: either way nothing is delivered.
      const p8 = await connect('p8', 'device', will(topic)).catch(() => undefined)
      p8?.stream.destroy()
    }
    // The positive control, sent last: the same device's Will on its own status arrives.
    const own = await connect('p8', 'device', will('devices/p8/status'))
    own.stream.destroy()
    await expect.poll(() => seen.map((m) => m.topic), {timeout: 15_000}).toContain('devices/p8/status')
    await settle()
    expect(seen.map((m) => `${m.topic} ${m.payload}`)).toEqual(['devices/p8/status {"state":"offline","will":"devices/p8/status"}'])
    // No retained forgery either: a later subscriber finds only p8's own retained status.
    const later = await observer('devices/#', 'controller')
    await settle()
    expect(later.seen.map((m) => m.topic)).toEqual(['devices/p8/status'])
    await later.client.publishAsync('devices/p8/status', '', {qos: 1, retain: true})
    await later.client.endAsync()
    await service.endAsync()
  })

  it('an MQTT 5 shared subscription $share/iotctl-ingest/devices/+/telemetry splits messages between two services: each exactly once, together all', async () => {
    const workers = await Promise.all(['ingest', 'controller'].map(async (name) => {
      const client = await connect(name, 'service')
      const got: string[] = []
      client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
      await client.subscribeAsync('$share/iotctl-ingest/devices/+/telemetry', {qos: 1})
      return got
    }))
    const devices = await Promise.all(['p9', 'p10', 'p2'].map((id) => connect(id)))
    const sent: string[] = []
    for (let seq = 1; seq <= 30; seq++) {
      for (const [i, device] of devices.entries()) {
        const id = ['p9', 'p10', 'p2'][i]!
        const payload = `{"ts":${seq},"seq":${seq},"metrics":{"t":${i}}}`
        await device.publishAsync(`devices/${id}/telemetry`, payload, {qos: 1})
        sent.push(`devices/${id}/telemetry ${payload}`)
      }
    }
    await expect.poll(() => workers[0]!.length + workers[1]!.length, {timeout: 10_000}).toBeGreaterThanOrEqual(sent.length)
    await settle()
    const all = [...workers[0]!, ...workers[1]!]
    expect(all.length).toBe(sent.length) // nothing delivered twice
    expect([...all].sort()).toEqual([...sent].sort()) // nothing lost
    expect(workers[0]!.length).toBeGreaterThan(0) // both shared the load
    expect(workers[1]!.length).toBeGreaterThan(0)
  })
})
