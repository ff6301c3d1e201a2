import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {MqttClient} from 'mqtt'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {supersedePredecessors} from '../../src/lib/pki/certificates.js'
import {publishCrls, revokeCertificates} from '../../src/lib/pki/index.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

/**
 * The embedded broker with real mqtt.js clients holding iotctl-issued certificates over TLS 1.3:
 * the topic contract is checked by what is delivered, not by acknowledgement codes.
 */
describe('embedded broker: certificate authentication and the topic ACL', () => {
  let world: PkiWorld
  let broker: RunningBroker
  let certs: PkiWorld['certs']
  const clients: MqttClient[] = []
  const logs: string[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'broker', devices: ['d1', 'd2', 'd3', 'd4', 'd5'], operators: ['ingest'], revoked: ['d3']})
    certs = world.certs
    broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, revocationCheckMs: 200,
      log: (l) => logs.push(l), onDeviceAuthenticated: async (identity) => void (await supersedePredecessors(world.db.pool, identity.serial))})
  })

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await broker?.close()
    await world?.close()
  })

  async function connect(name: string, port: 'device' | 'service' = 'device', clientId = name): Promise<MqttClient> {
    const client = await connectWith(`mqtts://127.0.0.1:${port === 'device' ? broker.devicePort : broker.servicePort}`, certs.get(name)!, world.trust, clientId)
    clients.push(client)
    return client
  }

  /** Messages an observer sees on `filter` while `act` runs, plus a grace period. */
  async function observe(filter: string, act: () => Promise<void>, waitMs = 400): Promise<string[]> {
    const observer = await connect('ingest', 'service', `ingest-${Math.random().toString(36).slice(2, 8)}`)
    const seen: string[] = []
    observer.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
    await observer.subscribeAsync(filter, {qos: 1})
    await act()
    await new Promise((r) => setTimeout(r, waitMs))
    await observer.endAsync()
    return seen
  }

  it('a device publishes in its own subtree and the message is delivered', async () => {
    const d1 = await connect('d1')
    const seen = await observe('devices/#', async () => {
      await d1.publishAsync('devices/d1/telemetry', '{"ts":1,"seq":1,"metrics":{"t":20}}', {qos: 1})
    })
    expect(seen).toEqual(['devices/d1/telemetry {"ts":1,"seq":1,"metrics":{"t":20}}'])
  })

  it('a publish into another device\'s subtree, a wrong direction or a $ topic is never delivered', async () => {
    const d2 = await connect('d2')
    const seen = await observe('devices/#', async () => {
      for (const topic of ['devices/d1/telemetry', 'devices/d2/commands', 'devices/d2/shadow/delta']) {
        await d2.publishAsync(topic, 'x', {qos: 0}).catch(() => undefined)
      }
    })
    expect(seen).toEqual([])
  })

  it('a subscription outside the own subtree is refused (SUBACK 0x80) and receives nothing', async () => {
    const d4 = await connect('d4')
    for (const filter of ['devices/d1/commands', 'devices/+/commands', '#', '$SYS/#']) {
      await expect(d4.subscribeAsync(filter, {qos: 1}), filter).rejects.toThrow(/Subscribe error/)
    }
    expect((await d4.subscribeAsync('devices/d4/commands', {qos: 1})).map((g) => g.qos)).toEqual([1])
    const received: string[] = []
    d4.on('message', (topic) => received.push(topic))
    const service = await connect('ingest', 'service', 'ingest-cmd')
    await service.publishAsync('devices/d1/commands', 'for d1', {qos: 1})
    await service.publishAsync('devices/d4/commands', 'for d4', {qos: 1})
    await new Promise((r) => setTimeout(r, 400))
    expect(received).toEqual(['devices/d4/commands'])
  })

  it('a client id that is not the certificate CN is refused with CONNACK "identifier rejected"', async () => {
    await expect(connect('d1', 'device', 'd2')).rejects.toThrow(/Identifier rejected/i)
  })

  it('a revoked certificate is refused at the TLS handshake (the CRL is loaded)', async () => {
    await expect(connect('d3')).rejects.toThrow()
  })

  it('a service certificate is refused on the device listener, a device certificate on the service listener', async () => {
    await expect(connect('ingest', 'device')).rejects.toThrow()
    await expect(connect('d1', 'service')).rejects.toThrow()
  })

  it('after `certs rotate`, the first connection with the new certificate supersedes the old one', async () => {
    const {rotateDeviceCertificate} = await import('../../src/lib/pki/index.js')
    const old = certs.get('d4')!.record.serial
    const {issued} = await rotateDeviceCertificate(world.db, {caDir: world.caDir, passphrase: PASSPHRASE, deviceId: 'd4', graceMs: 86_400_000, days: 30})
    const status = async (serial: string) => (await world.db.pool.query('SELECT status, revocation_reason FROM certificates WHERE serial = $1', [serial])).rows[0]
    expect(await status(old)).toEqual({status: 'active', revocation_reason: null}) // still valid during the grace period
    certs.set('d4-new', issued)
    const client = await connect('d4-new', 'device', 'd4')
    expect(await status(old)).toEqual({status: 'revoked', revocation_reason: 'superseded'})
    await client.endAsync()
  })

  it('a new CRL from `certs crl` is picked up without a restart: the revoked certificate fails the handshake', async () => {
    const d5 = await connect('d5')
    await d5.endAsync()
    await revokeCertificates(world.db, {deviceId: 'd5'}, 'keyCompromise')
    await publishCrls(world.db, {caDir: world.caDir, passphrase: PASSPHRASE})
    await expect.poll(() => logs.some((l) => l === 'CRLs reloaded'), {timeout: 5000}).toBe(true)
    await expect(connect('d5')).rejects.toThrow()
    expect(logs.some((l) => /device TLS refused .*CERT_REVOKED/.test(l))).toBe(true)
  })

  it('revoking a live session\'s certificate disconnects it within 5 seconds', async () => {
    const d2 = await connect('d2', 'device')
    const closed = new Promise<number>((resolve) => d2.once('close', () => resolve(Date.now())))
    const start = Date.now()
    await revokeCertificates(world.db, {deviceId: 'd2'}, 'keyCompromise')
    expect((await closed) - start).toBeLessThan(5000)
  })
})
