import {execFile} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startMosquitto, type RunningMosquitto} from '../helpers/mosquitto.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'

/**
 * Debian's real Mosquitto 2 (installed by .ci/run), started with the configuration iotctl writes:
 * the same access rules as the embedded broker, checked by delivery. Its clients (mosquitto_pub)
 * act as a device no one here wrote. Without mosquitto installed these tests fail, never skip.
 */
describe('Mosquitto with `iotctl broker config mosquitto`', () => {
  let world: PkiWorld
  let mosquitto: RunningMosquitto
  let devicePort: number
  let servicePort: number
  const clients: MqttClient[] = []

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'mosquitto', devices: ['m1', 'm2', 'm3'], operators: ['ingest'], revoked: ['m3']})
    mosquitto = await startMosquitto(world)
    ;({devicePort, servicePort} = mosquitto)
  }, 120_000)

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await mosquitto?.stop()
    await world?.close()
  })

  async function connect(name: string, port: number): Promise<MqttClient> {
    const client = await connectWith(`mqtts://127.0.0.1:${port}`, world.certs.get(name)!, world.trust, name)
    clients.push(client)
    return client
  }

  async function observe(act: () => Promise<void>): Promise<string[]> {
    const service = await connect('ingest', servicePort)
    const seen: string[] = []
    service.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`))
    await service.subscribeAsync('devices/#', {qos: 1})
    await act()
    await new Promise((r) => setTimeout(r, 500))
    await service.endAsync()
    return seen
  }

  it('a device publishes in its own subtree and the service receives it', async () => {
    const m1 = await connect('m1', devicePort)
    expect(await observe(() => m1.publishAsync('devices/m1/telemetry', 'own', {qos: 1}).then(() => undefined))).toEqual(['devices/m1/telemetry own'])
  })

  it('publishes into another subtree or the wrong direction are never delivered', async () => {
    const m2 = await connect('m2', devicePort)
    const seen = await observe(async () => {
      for (const topic of ['devices/m1/telemetry', 'devices/m2/commands', 'devices/m2/shadow/delta']) await m2.publishAsync(topic, 'x', {qos: 1})
    })
    expect(seen).toEqual([])
  })

  it('a device receives its own commands and never another device\'s', async () => {
    const m2 = await connect('m2', devicePort)
    const received: string[] = []
    m2.on('message', (topic) => received.push(topic))
    await m2.subscribeAsync(['devices/m1/commands', 'devices/+/commands', 'devices/m2/commands'], {qos: 1}).catch(() => undefined)
    const service = await connect('ingest', servicePort)
    await service.publishAsync('devices/m1/commands', 'for m1', {qos: 1})
    await service.publishAsync('devices/m2/commands', 'for m2', {qos: 1})
    await new Promise((r) => setTimeout(r, 500))
    expect(received).toEqual(['devices/m2/commands'])
  })

  it('a revoked certificate is refused (crlfile), and a device certificate cannot use the service listener', async () => {
    await expect(connect('m3', devicePort)).rejects.toThrow()
    await expect(connect('m1', servicePort)).rejects.toThrow()
  })

  it('mosquitto_pub, with the files `certs issue` writes, publishes telemetry that arrives', async () => {
    const files = join(world.dir, 'm1-files')
    const cert = world.certs.get('m1')!
    await import('node:fs/promises').then((fs) => fs.mkdir(files, {recursive: true}))
    await writeFile(join(files, 'device.crt'), cert.certificate + cert.chain)
    await writeFile(join(files, 'device.key'), cert.private_key!, {mode: 0o600})
    await writeFile(join(files, 'trust.pem'), world.trust)
    const seen = await observe(() => new Promise<void>((resolve, reject) => {
      execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(devicePort), '--cafile', join(files, 'trust.pem'),
        '--cert', join(files, 'device.crt'), '--key', join(files, 'device.key'), '-i', 'm1', '--tls-version', 'tlsv1.3',
        '-q', '1', '-t', 'devices/m1/telemetry', '-m', '{"ts":1795575651619,"seq":1,"metrics":{"t":21.5}}'], (error, _out, err) =>
        error ? reject(new Error(`mosquitto_pub failed: ${err}`)) : resolve())
    }))
    expect(seen).toEqual(['devices/m1/telemetry {"ts":1795575651619,"seq":1,"metrics":{"t":21.5}}'])
  })
})
