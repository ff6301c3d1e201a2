import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {issueDeviceCertificates, type IssuedCertificate} from '../../src/lib/pki/index.js'
import {getShadow, setDesired, setDesiredBySelector} from '../../src/lib/shadow/index.js'
import {startDevBroker} from '../../src/lib/stack/dev-broker.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {mapLimit} from '../helpers/e2e-expect.js'
import {connectWith} from '../helpers/mqtt-world.js'
import {caPem, cleanup, tempDir} from '../helpers/pki-fixtures.js'
import {registerDevice, toDeviceInput} from '../../src/lib/registry/index.js'

const FLEET = 1000

/** The shadow sync service as `dev up` runs it, with real devices over mutual TLS. */
describe('device shadows over MQTT (dev stack wiring)', () => {
  let db: TestDatabase
  let home: string
  let services: Awaited<ReturnType<typeof startDevBroker>>
  let trust: string
  const certs = new Map<string, IssuedCertificate>()
  const clients: MqttClient[] = []
  const ids = ['s-offline', 's-online', 's-get', 's-bad', 's-none']
  const fleet = Array.from({length: FLEET}, (_, i) => `fleet-${String(i).padStart(4, '0')}`)

  beforeAll(async () => {
    db = await freshDatabase()
    home = await tempDir('shadow-sync')
    const silent = () => undefined
    services = await startDevBroker({home, db, mqttPort: 0, servicePort: 0, logs: {broker: silent, ingest: silent, shadow: silent}})
    const caDir = join(home, 'ca')
    const passphrase = (await readFile(join(caDir, 'dev-passphrase'), 'utf8')).trim()
    for (const id of ids) await registerDevice(db, toDeviceInput({device_id: id, device_type: 'thermostat'}))
    await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) SELECT unnest($1::text[]), 'thermostat', '{"site": "fleet"}'`, [fleet])
    for (const c of await issueDeviceCertificates(db, {caDir, passphrase, deviceIds: [...ids, ...fleet], days: 30})) certs.set(c.record.subject_name, c)
    trust = await caPem(caDir, 'root.crt', 'service-ca.crt')
  }, 120_000)

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
    await services?.broker.close()
    await services?.firmware.stop()
    await services?.shadow.stop()
    await db?.drop()
    await cleanup(home)
  })

  async function device(id: string): Promise<MqttClient & {inbox: Array<{topic: string; body: any}>}> {
    const client = await connectWith(`mqtts://127.0.0.1:${services.broker.devicePort}`, certs.get(id)!, trust, id)
    const inbox: Array<{topic: string; body: any}> = []
    client.on('message', (topic, payload) => inbox.push({topic: topic.slice(`devices/${id}/`.length), body: payload.length ? JSON.parse(payload.toString()) : null}))
    clients.push(client)
    return Object.assign(client, {inbox})
  }

  const subscribeAll = (c: MqttClient, id: string) => c.subscribeAsync(['shadow/delta', 'shadow/update/accepted', 'shadow/update/rejected', 'shadow/get/accepted', 'shadow/get/rejected']
    .map((leaf) => `devices/${id}/${leaf}`), {qos: 1})

  it('desired set while the device is offline reaches it on connect; its report clears the delta', async () => {
    await setDesired(db, 's-offline', {target_temperature: 72, mode: 'cooling'})
    const d = await device('s-offline')
    await subscribeAll(d, 's-offline')
    await expect.poll(() => d.inbox.filter((m) => m.topic === 'shadow/delta').at(-1)?.body, {timeout: 5000})
      .toMatchObject({state: {target_temperature: 72, mode: 'cooling'}, version: 1})
    await d.publishAsync('devices/s-offline/shadow/update', JSON.stringify({state: {reported: {target_temperature: 72, mode: 'cooling'}}, clientToken: 'r1'}), {qos: 1})
    const accepted = d.inbox.find((m) => m.topic === 'shadow/update/accepted')
    expect(accepted?.body).toMatchObject({version: 2, clientToken: 'r1', state: {reported: {target_temperature: 72, mode: 'cooling'}}})
    expect(accepted?.body.delta).toBeUndefined()
    const doc = await getShadow(db, 's-offline')
    expect(doc.state).toEqual({desired: {target_temperature: 72, mode: 'cooling'}, reported: {target_temperature: 72, mode: 'cooling'}})
    // The retained delta was cleared: a fresh subscription gets nothing but (at most) the empty clear.
    await expect.poll(() => d.inbox.filter((m) => m.topic === 'shadow/delta').at(-1)?.body, {timeout: 5000}).toBeNull()
    const late = await device('s-offline') // takes over the session: a reconnect
    await late.subscribeAsync('devices/s-offline/shadow/delta', {qos: 1})
    await new Promise((r) => setTimeout(r, 500))
    expect(late.inbox.filter((m) => m.body !== null)).toEqual([])
  })

  it('an online device receives each change of desired state, with increasing versions', async () => {
    const d = await device('s-online')
    await subscribeAll(d, 's-online')
    await setDesired(db, 's-online', {fan: 'auto'})
    await setDesired(db, 's-online', {fan: 'high', schedule: {night: 18}})
    await expect.poll(() => d.inbox.filter((m) => m.topic === 'shadow/delta' && m.body).at(-1)?.body, {timeout: 5000})
      .toMatchObject({state: {fan: 'high', schedule: {night: 18}}, version: 2})
    const versions = d.inbox.filter((m) => m.topic === 'shadow/delta' && m.body).map((m) => m.body.version as number)
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
  })

  it('get answers with the whole document and the clientToken; no shadow yet is a 404', async () => {
    await setDesired(db, 's-get', {color: 'blue'})
    const d = await device('s-get')
    await subscribeAll(d, 's-get')
    await d.publishAsync('devices/s-get/shadow/get', JSON.stringify({clientToken: 'g1'}), {qos: 1})
    expect(d.inbox.find((m) => m.topic === 'shadow/get/accepted')?.body).toMatchObject({state: {desired: {color: 'blue'}, delta: {color: 'blue'}}, version: 1, clientToken: 'g1'})
    const none = await device('s-none')
    await subscribeAll(none, 's-none')
    await none.publishAsync('devices/s-none/shadow/get', '', {qos: 1})
    expect(none.inbox.find((m) => m.topic === 'shadow/get/rejected')?.body).toMatchObject({code: 404})
  })

  it('malformed updates, desired from a device and version conflicts are rejected with a reason, and change nothing', async () => {
    await setDesired(db, 's-bad', {x: 1})
    const d = await device('s-bad')
    await subscribeAll(d, 's-bad')
    const bad: Array<[string, number]> = [
      ['not json', 400],
      [JSON.stringify({state: {reported: {'bad key!': 1}}, clientToken: 'k'}), 400],
      [JSON.stringify({state: {desired: {x: 2}}}), 403],
      [JSON.stringify({state: {reported: {x: 1}}, version: 7}), 409],
      [JSON.stringify({state: {reported: {blob: 'x'.repeat(9000)}}}), 413],
      [JSON.stringify([1, 2]), 400],
    ]
    for (const [payload] of bad) await d.publishAsync('devices/s-bad/shadow/update', payload, {qos: 1})
    const rejected = d.inbox.filter((m) => m.topic === 'shadow/update/rejected').map((m) => m.body)
    expect(rejected.map((r) => r.code)).toEqual(bad.map(([, code]) => code))
    expect(rejected.every((r) => typeof r.message === 'string' && r.message.length > 0)).toBe(true)
    expect(rejected[1].clientToken).toBe('k')
    expect(rejected[3].version).toBe(1)
    const doc = await getShadow(db, 's-bad')
    expect(doc.version).toBe(1)
    expect(doc.state.reported).toEqual({})
  })

  it(`desired state set by selector for ${FLEET} devices reaches every online device`, async () => {
    const devices = await mapLimit(fleet, 50, (id) => device(id))
    await mapLimit(devices.map((d, i) => [d, fleet[i]!] as const), 100, ([d, id]) => d.subscribeAsync(`devices/${id}/shadow/delta`, {qos: 1}))
    const result = await setDesiredBySelector(db, {selector: 'site=fleet'}, {firmware_channel: 'beta', report_every: 60})
    expect(result).toEqual({matched: FLEET, changed: FLEET, unchanged: 0})
    await expect.poll(() => devices.filter((d) => d.inbox.some((m) => m.body?.state?.firmware_channel === 'beta')).length, {timeout: 30_000, interval: 200}).toBe(FLEET)
    // Again: nothing changes, nothing is republished.
    expect(await setDesiredBySelector(db, {selector: 'site=fleet'}, {firmware_channel: 'beta'})).toEqual({matched: FLEET, changed: 0, unchanged: FLEET})
  }, 120_000)
})
