import {createServer, type AddressInfo, type Server} from 'node:net'
import {Aedes} from 'aedes'
import mqtt, {type MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {acknowledgeAfter, backoffDelay, connectMqtt} from '../../src/lib/mqtt/client.js'

/**
 * PUBACK after the work is done, observed at a real broker (aedes in-process, plain TCP on port 0):
 * aedes reports every PUBACK it receives from a subscriber with its 'ack' event.
 */
describe('acknowledgeAfter: QoS 1 PUBACK only after the handler resolved', () => {
  let broker: Aedes
  let server: Server
  let url: string
  const acked: string[] = []
  const clients: MqttClient[] = []

  beforeAll(async () => {
    broker = await Aedes.createBroker()
    broker.on('ack', (packet) => {
      if (packet && 'payload' in packet) acked.push(String(packet.payload))
    })
    server = createServer(broker.handle)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await new Promise<void>((r) => broker.close(() => r()))
    await new Promise((r) => server.close(r))
  })

  async function publisher(): Promise<MqttClient> {
    const c = await mqtt.connectAsync(url, {clientId: `pub-${clients.length}`, reconnectPeriod: 0})
    clients.push(c)
    return c
  }

  it('holds each PUBACK until its work resolves, keeps taking messages meanwhile, and acks in arrival order', async () => {
    const managed = await connectMqtt({url, clientId: 'worker-1', clean: false})
    clients.push(managed.client)
    const release = new Map<string, () => void>()
    const seen: string[] = []
    acknowledgeAfter(managed.client, (_topic, payload) => {
      seen.push(String(payload))
      return new Promise((resolve) => release.set(String(payload), resolve))
    })
    await managed.client.subscribeAsync('jobs/#', {qos: 1})
    const pub = await publisher()
    for (const n of ['m1', 'm2', 'm3']) await pub.publishAsync('jobs/a', n, {qos: 1})
    // All three reached the handler although none is done: mqtt.js was not blocked.
    await expect.poll(() => seen, {timeout: 2000}).toEqual(['m1', 'm2', 'm3'])
    await new Promise((r) => setTimeout(r, 200))
    expect(acked).toEqual([])
    release.get('m2')!()
    await new Promise((r) => setTimeout(r, 200))
    expect(acked).toEqual([]) // m1 is not done: m2's PUBACK waits behind it ([MQTT-4.6.0-2])
    release.get('m1')!()
    await expect.poll(() => acked, {timeout: 2000}).toEqual(['m1', 'm2'])
    release.get('m3')!()
    await expect.poll(() => acked, {timeout: 2000}).toEqual(['m1', 'm2', 'm3'])
    await managed.close()
  })

  it('a message whose work did not finish before the connection dropped is redelivered, never acknowledged late', async () => {
    acked.length = 0
    const managed = await connectMqtt({url, clientId: 'worker-2', clean: false, backoff: {baseMs: 50, capMs: 100}})
    clients.push(managed.client)
    const deliveries: string[] = []
    let hold: (() => void) | undefined
    acknowledgeAfter(managed.client, (_topic, payload) => {
      deliveries.push(String(payload))
      if (deliveries.length === 1) return new Promise((resolve) => (hold = resolve))
      return Promise.resolve()
    })
    await managed.client.subscribeAsync('work/#', {qos: 1})
    const pub = await publisher()
    await pub.publishAsync('work/a', 'w1', {qos: 1})
    await expect.poll(() => deliveries, {timeout: 2000}).toEqual(['w1'])
    managed.client.stream.destroy() // the connection drops with w1 unacknowledged
    await expect.poll(() => managed.connects, {timeout: 5000}).toBe(2) // reconnected by the backoff loop
    hold!() // the old work finishes now: its PUBACK belongs to a dead connection and is dropped
    await expect.poll(() => deliveries, {timeout: 5000}).toEqual(['w1', 'w1']) // the persistent session redelivers
    await expect.poll(() => acked, {timeout: 2000}).toEqual(['w1'])
    await new Promise((r) => setTimeout(r, 200))
    expect(acked).toEqual(['w1'])
    await managed.close()
  })

  it('full-jitter backoff stays within [0, min(cap, base·2^attempt))', () => {
    expect(backoffDelay(0, 1000, 60_000, () => 0.999)).toBe(999)
    expect(backoffDelay(3, 1000, 60_000, () => 0.5)).toBe(4000)
    expect(backoffDelay(10, 1000, 60_000, () => 0.999)).toBe(59_940)
    expect(backoffDelay(10, 1000, 60_000, () => 0)).toBe(0)
  })

  it('an unreachable broker fails fast with exit code 6 and the masked URL', async () => {
    await expect(connectMqtt({url: 'mqtt://user:secret@127.0.0.1:1', clientId: 'x'})).rejects.toMatchObject({
      exitCode: 6, message: expect.stringContaining('127.0.0.1:1') as unknown as string,
    })
    await expect(connectMqtt({url: 'mqtt://user:secret@127.0.0.1:1', clientId: 'x'})).rejects.not.toThrow(/secret/)
  })
})
