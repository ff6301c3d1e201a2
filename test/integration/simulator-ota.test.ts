import {generateKeyPairSync, randomBytes, type KeyObject} from 'node:crypto'
import {writeFile} from 'node:fs/promises'
import {createConnection, createServer, type Server, type Socket} from 'node:net'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startBroker, type RunningBroker} from '../../src/lib/broker/server.js'
import {
  FileArtifactStore, initSigningKeys, keyIdOf, loadSigningKey, sealAssignment, signPath, startArtifactServer, urlSigningSecret,
  type Assignment, type RunningArtifactServer,
} from '../../src/lib/firmware/index.js'
import {DEFAULT_METRICS, parseMetrics, startFleet, type OtaOptions, type RunningFleet} from '../../src/lib/simulator/index.js'
import {firmwareKey} from '../../src/lib/registry/firmware-key.js'
import {updateDevice} from '../../src/lib/registry/index.js'
import {prepareSimulation} from '../../src/lib/simulator/prepare.js'
import {runSimulation, type SimulationOptions} from '../../src/lib/simulator/run.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {caPem, PASSPHRASE} from '../helpers/pki-fixtures.js'

const MAIN = Array.from({length: 5}, (_, i) => `ota-${i}`)
const FAILING = ['ota-fail-0', 'ota-fail-1']
const HANGING = ['ota-hang-0']
const UNTRUSTING = ['ota-nokey-0']
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A TCP proxy in front of the artifact server that cuts its first connection after `cutAfter` bytes. */
async function cuttingProxy(targetPort: number, cutAfter: number): Promise<{port: number; connections: () => number; close: () => Promise<void>}> {
  let armed = true
  let connections = 0
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const [upstream, cut] = [createConnection(targetPort, '127.0.0.1'), armed]
    connections++
    armed = false
    let forwarded = 0
    for (const s of [client, upstream]) sockets.add(s.on('error', () => undefined).on('close', () => sockets.delete(s)))
    client.pipe(upstream)
    upstream.on('end', () => client.end()).on('data', (chunk: Buffer) => {
      forwarded += chunk.length
      // TLS passes through untouched: the cut lands inside a response body, as a dropped link would.
      if (cut && forwarded > cutAfter) [client, upstream].forEach((x) => x.destroy())
      else client.write(chunk)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as {port: number}).port,
    connections: () => connections,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/**
 * The device side of OTA (docs/PROTOCOL.md "Firmware updates (OTA)"): simulated devices on a real
 * broker over mutual TLS, sealed assignments published through the broker, artifacts from the real
 * HTTPS artifact server. What is checked is what the cloud sees: ota/progress, status, shadow/update.
 */
describe('simulator: firmware updates (OTA) over a real broker and artifact server', () => {
  let world: PkiWorld
  let broker: RunningBroker
  let artifacts: RunningArtifactServer
  let store: FileArtifactStore
  let secret: Buffer
  let signing: {key: KeyObject; keyId: string}
  let root: string
  const fleets: RunningFleet[] = []
  const seen: Array<{device: string; leaf: string; body: any}> = []
  const logs: string[] = []
  const closers: Array<() => Promise<void>> = []
  let main: RunningFleet
  let firstInstall: Assignment

  const ota = (extra: Partial<OtaOptions> = {}): OtaOptions => ({trustedKey: signing.key, ca: root, failureRate: 0, hangRate: 0, installMs: 20, rebootMs: 50, backoffMs: 100, ...extra})

  /** Start a fleet and wait until every device has subscribed (its shadow/get follows the SUBACK). */
  async function fleet(ids: string[], options: OtaOptions, firmware = '1.0.0'): Promise<RunningFleet> {
    const f = await startFleet({url: `mqtts://127.0.0.1:${broker.devicePort}`, trust: world.trust, intervalMs: 3_600_000, metrics: parseMetrics(DEFAULT_METRICS),
      anomalyRate: 0, qos: 1, log: (line) => void logs.push(line), ota: options,
      devices: ids.map((id) => ({id, cert: world.certs.get(id)!.certificate + world.certs.get(id)!.chain, key: world.certs.get(id)!.private_key!, type: 'thermostat', firmware}))})
    fleets.push(f)
    const subscribed = () => ids.every((id) => seen.some((s) => s.device === id && s.leaf === 'shadow/get'))
    for (const until = Date.now() + 20_000; !subscribed(); await sleep(50)) if (Date.now() > until) throw new Error(`${ids.join(', ')} did not subscribe within 20 s`)
    return f
  }

  async function artifact(bytes: number): Promise<{key: string; sha256: string; size: number; url: (port?: number) => string}> {
    const file = join(world.dir, `fw-${randomBytes(4).toString('hex')}.bin`)
    await writeFile(file, randomBytes(bytes))
    const put = await store.put(file)
    const path = `/artifacts/${put.key}`
    const signed = signPath(secret, path, Math.floor(Date.now() / 1000) + 3600)
    return {...put, url: (port = artifacts.port) => `https://127.0.0.1:${port}${signed}`}
  }

  let counter = 0
  const assignment = (device: string, over: Partial<Assignment>): Assignment => ({
    schema: 1, id: `r${++counter}/install`, kind: 'install', rollout: `r${counter}`, device, device_type: 'thermostat', version: '1.1.0', version_code: 2,
    min_version: null, sha256: '0'.repeat(64), size: 0, url: null, issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 3_600_000).toISOString(), ...over,
  })
  const send = (to: string, a: Assignment, key = signing) => broker.publish(`devices/${to}/firmware`, JSON.stringify(sealAssignment(a, key.key, key.keyId)), {qos: 1, retain: false})

  const progress = (device: string, id?: string) => seen.filter((s) => s.device === device && s.leaf === 'ota/progress' && (id === undefined || s.body.assignment === id)).map((s) => s.body)
  const last = (device: string, id: string) => progress(device, id).at(-1)
  const lastStatus = (device: string) => seen.filter((s) => s.device === device && s.leaf === 'status').at(-1)?.body

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'sim-ota', devices: [...MAIN, ...FAILING, ...HANGING, ...UNTRUSTING]})
    broker = await startBroker({db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0})
    for (const topic of ['devices/+/ota/progress', 'devices/+/status', 'devices/+/shadow/update', 'devices/+/shadow/get']) {
      await broker.subscribe(topic, (t, payload, done) => {
        const [, device, ...leaf] = t.split('/')
        seen.push({device: device!, leaf: leaf.join('/'), body: JSON.parse(payload.toString())})
        done()
      })
    }
    await initSigningKeys({dir: join(world.dir, 'keys'), algorithm: 'ecdsa-p256', passphrase: PASSPHRASE})
    signing = await loadSigningKey(join(world.dir, 'keys'), PASSPHRASE)
    store = new FileArtifactStore(join(world.dir, 'artifacts'))
    secret = await urlSigningSecret(join(world.dir, 'artifacts'))
    artifacts = await startArtifactServer({store, secret, caDir: world.caDir, passphrase: PASSPHRASE, port: 0})
    root = await caPem(world.caDir, 'root.crt')
    main = await fleet(MAIN, ota())
  }, 120_000)

  afterAll(async () => {
    await Promise.allSettled(fleets.map((f) => f.stop()))
    for (const close of closers) await close()
    await artifacts?.close()
    await broker?.close()
    await world?.close()
  }, 60_000)

  it('devices announce the firmware they run on status when they connect', () => {
    for (const id of MAIN) expect(lastStatus(id)).toMatchObject({state: 'online', firmware: '1.0.0'})
  })

  it('an install (published twice, as on a reconnect) is downloaded, verified, installed once, and reported with status and shadow', async () => {
    const fw = await artifact(200_000)
    const sent = MAIN.map((id) => assignment(id, {sha256: fw.sha256, size: fw.size, url: fw.url()}))
    firstInstall = sent[0]!
    for (const [i, id] of MAIN.entries()) {
      await send(id, sent[i]!)
      await send(id, sent[i]!)
    }
    await expect.poll(() => MAIN.map((id, i) => last(id, sent[i]!.id)?.state), {timeout: 30_000, interval: 100}).toEqual(MAIN.map(() => 'succeeded'))
    for (const [i, id] of MAIN.entries()) {
      const states = progress(id, sent[i]!.id)
      expect(states.map((p) => p.state)).toEqual(['downloading', 'downloading', 'installing', 'succeeded'])
      expect(states.map((p) => p.version)).toEqual(['1.0.0', '1.0.0', '1.0.0', '1.1.0'])
      expect(states[0].bytes).toBe(0)
      expect(states[1].bytes).toBeGreaterThanOrEqual(100_000)
      await expect.poll(() => lastStatus(id), {timeout: 5000}).toMatchObject({state: 'online', firmware: '1.1.0'})
      expect(seen.filter((s) => s.device === id && s.leaf === 'shadow/update').at(-1)?.body).toMatchObject({state: {reported: {firmware: '1.1.0'}}})
    }
    // A third copy after it finished is a duplicate too.
    await send(MAIN[0]!, sent[0]!)
    await sleep(500)
    expect(progress(MAIN[0]!, sent[0]!.id)).toHaveLength(4)
    expect(main.installs()).toEqual(new Map(MAIN.map((id) => [`${id}@1.1.0`, 1])))
    expect([...main.firmware().values()]).toEqual(MAIN.map(() => '1.1.0'))
    expect(main.counters).toMatchObject({otaInstalls: 5, otaFailures: 0, errors: 0})
  })

  it('after a reconnect the device announces its new firmware, and the republished assignment is a duplicate', async () => {
    const gets = () => seen.filter((s) => s.device === 'ota-0' && s.leaf === 'shadow/get').length
    const before = gets()
    // Another session with the device's identity takes over (MQTT 3.1.1 §3.1.4): the device is disconnected and reconnects.
    const intruder = await connectWith(`mqtts://127.0.0.1:${broker.devicePort}`, world.certs.get('ota-0')!, world.trust, 'ota-0')
    await intruder.endAsync(true)
    await expect.poll(gets, {timeout: 20_000, interval: 50}).toBeGreaterThan(before)
    expect(main.counters.reconnects).toBeGreaterThanOrEqual(1)
    expect(lastStatus('ota-0')).toMatchObject({state: 'online', firmware: '1.1.0'})
    await send('ota-0', firstInstall) // the controller republishes open assignments on connect
    await sleep(500)
    expect(progress('ota-0', firstInstall.id)).toHaveLength(4)
    expect(main.installs().get('ota-0@1.1.0')).toBe(1)
  })

  it('a shadow delta cannot change the firmware: the device reports the version it runs, and applies the other keys', async () => {
    const reports = () => seen.filter((s) => s.device === 'ota-2' && s.leaf === 'shadow/update').map((s) => s.body)
    const before = reports().length
    await broker.publish('devices/ota-2/shadow/delta', JSON.stringify({state: {firmware: '9.9.9', led: 'on'}, version: 1000}), {qos: 1, retain: false})
    await expect.poll(() => reports().slice(before), {timeout: 10_000, interval: 50}).toEqual([expect.objectContaining({state: {reported: {led: 'on', firmware: '1.1.0'}}})])
    await broker.publish('devices/ota-2/shadow/delta', JSON.stringify({state: {firmware: '9.9.9'}, version: 1001}), {qos: 1, retain: false})
    await expect.poll(() => reports().slice(before).length, {timeout: 10_000, interval: 50}).toBe(2)
    expect(reports().at(-1)).toMatchObject({state: {reported: {firmware: '1.1.0'}}})
    expect(main.firmware().get('ota-2')).toBe('1.1.0')
  })

  it('refusals carry the reason code and change nothing: bad signature, wrong device, wrong type, expired, downgrade, same version, incompatible', async () => {
    const fw = await artifact(1000)
    const base = {sha256: fw.sha256, size: fw.size, url: fw.url()}
    const other = generateKeyPairSync('ed25519').privateKey
    const cases: Array<{to: string; a: Assignment; key?: {key: KeyObject; keyId: string}; want: object}> = [
      {to: 'ota-0', a: assignment('ota-0', {...base, version: '1.2.0'}), key: {key: other, keyId: keyIdOf(other)}, want: {state: 'failed', reason: 'bad-signature'}},
      {to: 'ota-0', a: assignment('ota-1', {...base, version: '1.2.0'}), want: {state: 'failed', reason: 'wrong-device'}},
      {to: 'ota-1', a: assignment('ota-1', {...base, version: '1.2.0', device_type: 'camera'}), want: {state: 'failed', reason: 'wrong-device-type'}},
      {to: 'ota-1', a: assignment('ota-1', {...base, version: '1.2.0', expires_at: new Date(Date.now() - 1000).toISOString()}), want: {state: 'failed', reason: 'expired'}},
      {to: 'ota-2', a: assignment('ota-2', {...base, version: '1.0.5'}), want: {state: 'failed', reason: 'downgrade'}},
      {to: 'ota-2', a: assignment('ota-2', {...base, version: '1.1.0'}), want: {state: 'already-installed'}},
      {to: 'ota-3', a: assignment('ota-3', {...base, version: '1.2.0', min_version: '1.1.5'}), want: {state: 'rejected', reason: 'incompatible'}},
    ]
    for (const c of cases) await send(c.to, c.a, c.key)
    for (const c of cases) {
      await expect.poll(() => last(c.to, c.a.id), {timeout: 10_000, interval: 50}).toMatchObject({...c.want, version: '1.1.0'})
      expect(progress(c.to, c.a.id)).toHaveLength(1)
    }
    expect([...main.firmware().values()]).toEqual(MAIN.map(() => '1.1.0'))
  })

  it('a tampered artifact (changed after hashing) is refused with checksum-mismatch; a wrong size with size-mismatch', async () => {
    const fw = await artifact(150_000)
    await writeFile(join(store.dir, fw.key), randomBytes(fw.size)) // same size, other bytes
    const tampered = assignment('ota-3', {version: '1.3.0', sha256: fw.sha256, size: fw.size, url: fw.url()})
    const good = await artifact(10_000)
    const sized = assignment('ota-3', {version: '1.3.0', sha256: good.sha256, size: good.size + 1, url: good.url()})
    await send('ota-3', tampered)
    await send('ota-3', sized)
    await expect.poll(() => last('ota-3', tampered.id), {timeout: 20_000, interval: 100}).toMatchObject({state: 'failed', reason: 'checksum-mismatch', version: '1.1.0'})
    await expect.poll(() => last('ota-3', sized.id), {timeout: 20_000, interval: 100}).toMatchObject({state: 'failed', reason: 'size-mismatch', version: '1.1.0'})
    expect(progress('ota-3', tampered.id).map((p) => p.state)).not.toContain('installing')
    expect(main.firmware().get('ota-3')).toBe('1.1.0')
    expect(lastStatus('ota-3')).toMatchObject({firmware: '1.1.0'})
  })

  it('a download cut mid-transfer resumes with a Range request from the last byte received and succeeds', async () => {
    const fw = await artifact(300_000)
    const proxy = await cuttingProxy(artifacts.port, 100_000)
    closers.push(proxy.close)
    const a = assignment('ota-1', {version: '1.4.0', sha256: fw.sha256, size: fw.size, url: fw.url(proxy.port)})
    await send('ota-1', a)
    await expect.poll(() => last('ota-1', a.id)?.state, {timeout: 30_000, interval: 100}).toBe('succeeded')
    const resumed = logs.map((l) => /^ota-1: r\d+\/install: download interrupted at byte (\d+) of 300000 .*Range bytes=(\d+)-/.exec(l)).filter((m) => m !== null)
    expect(resumed).toHaveLength(1)
    const at = Number(resumed[0]![1])
    expect(at).toBeGreaterThan(0)
    expect(at).toBeLessThan(fw.size)
    expect(Number(resumed[0]![2])).toBe(at)
    expect(proxy.connections()).toBe(2)
    expect(last('ota-1', a.id)).toMatchObject({version: '1.4.0'}) // the SHA-256 matched: no byte lost or doubled
    expect(main.installs().get('ota-1@1.4.0')).toBe(1)
  })

  it('a rollback after a success boots the previous slot again (rolled-back); without that version in the slot: rollback-unavailable', async () => {
    const back = assignment('ota-4', {kind: 'rollback', version: '1.0.0', url: null})
    await send('ota-4', back)
    await expect.poll(() => last('ota-4', back.id), {timeout: 10_000, interval: 50}).toMatchObject({state: 'rolled-back', version: '1.0.0'})
    await expect.poll(() => lastStatus('ota-4'), {timeout: 5000}).toMatchObject({state: 'online', firmware: '1.0.0'})
    expect(seen.filter((s) => s.device === 'ota-4' && s.leaf === 'shadow/update').at(-1)?.body).toMatchObject({state: {reported: {firmware: '1.0.0'}}})
    const again = assignment('ota-4', {kind: 'rollback', version: '0.9.0', url: null})
    await send('ota-4', again)
    await expect.poll(() => last('ota-4', again.id), {timeout: 10_000, interval: 50}).toMatchObject({state: 'failed', reason: 'rollback-unavailable', version: '1.0.0'})
    expect(main.counters.otaRollbacks).toBe(1)
  })

  it('with --ota-failure-rate 1 the new image fails to boot, is reverted and reported boot-failed; the version stays', async () => {
    const f = await fleet(FAILING, ota({failureRate: 1}))
    const fw = await artifact(5000)
    const sent = FAILING.map((id) => assignment(id, {sha256: fw.sha256, size: fw.size, url: fw.url()}))
    for (const [i, id] of FAILING.entries()) await send(id, sent[i]!)
    for (const [i, id] of FAILING.entries()) {
      await expect.poll(() => last(id, sent[i]!.id), {timeout: 20_000, interval: 100}).toMatchObject({state: 'failed', reason: 'boot-failed', version: '1.0.0'})
      expect(progress(id, sent[i]!.id).map((p) => p.state)).toEqual(['downloading', 'downloading', 'installing', 'failed'])
      expect(lastStatus(id)).toMatchObject({firmware: '1.0.0'})
    }
    expect(f.installs().size).toBe(0)
    expect(f.counters).toMatchObject({otaFailures: 2, otaInstalls: 0})
  })

  it('with --ota-hang-rate 1 the device says nothing at all after the assignment', async () => {
    const f = await fleet(HANGING, ota({hangRate: 1}))
    const fw = await artifact(5000)
    const a = assignment(HANGING[0]!, {sha256: fw.sha256, size: fw.size, url: fw.url()})
    await send(HANGING[0]!, a)
    await expect.poll(() => f.counters.otaHangs, {timeout: 10_000, interval: 50}).toBe(1)
    await sleep(1500)
    expect(progress(HANGING[0]!)).toEqual([])
    expect(f.firmware().get(HANGING[0]!)).toBe('1.0.0')
  })

  it('without a trusted key every assignment is refused with bad-signature', async () => {
    const f = await fleet(UNTRUSTING, ota({trustedKey: undefined}))
    const fw = await artifact(5000)
    const a = assignment(UNTRUSTING[0]!, {sha256: fw.sha256, size: fw.size, url: fw.url()})
    await send(UNTRUSTING[0]!, a)
    await expect.poll(() => last(UNTRUSTING[0]!, a.id), {timeout: 10_000, interval: 50}).toMatchObject({state: 'failed', reason: 'bad-signature', version: '1.0.0'})
    expect(f.counters.otaRefusals).toBe(1)
  })

  it('prepare gives each device its registered type and firmware (--register --firmware, else the registry)', async () => {
    const options = {caDir: world.caDir, passphrase: PASSPHRASE, prefix: 'ota-prep-', count: 2, type: 'thermostat'}
    const first = await prepareSimulation(world.db, {...options, firmware: '2.0.0', register: true})
    expect(first.devices.map((d) => [d.id, d.type, d.firmware])).toEqual([['ota-prep-0000', 'thermostat', '2.0.0'], ['ota-prep-0001', 'thermostat', '2.0.0']])
    await updateDevice(world.db, 'ota-prep-0001', {firmware_version: '2.1.0', firmware_key: firmwareKey('2.1.0')}) // an update installed since
    const again = await prepareSimulation(world.db, {...options, type: 'ignored', register: false})
    expect(again.devices.map((d) => [d.type, d.firmware])).toEqual([['thermostat', '2.0.0'], ['thermostat', '2.1.0']])
  })

  const simulation = (prefix: string, firmwareKeyFile: string, signal: AbortSignal, log: (line: string) => void): SimulationOptions => ({
    db: world.db, caDir: world.caDir, passphrase: PASSPHRASE, deviceUrl: `mqtts://127.0.0.1:${broker.devicePort}`, count: 1, prefix, type: 'thermostat',
    firmware: '1.0.0', register: true, intervalMs: 3_600_000, metrics: parseMetrics(DEFAULT_METRICS), anomalyRate: 0, qos: 1,
    firmwareKeyFile, otaFailureRate: 0, otaHangRate: 0, signal, log,
  })

  it('`simulate` (runSimulation) trusts the key file it is given, installs, and counts it in the summary', async () => {
    const stop = new AbortController()
    const run = runSimulation(simulation('ota-run-', join(world.dir, 'keys', 'firmware-signing.pub'), stop.signal, () => undefined))
    try {
      await expect.poll(() => seen.some((s) => s.device === 'ota-run-0000' && s.leaf === 'shadow/get'), {timeout: 20_000, interval: 50}).toBe(true)
      const fw = await artifact(70_000)
      const a = assignment('ota-run-0000', {sha256: fw.sha256, size: fw.size, url: fw.url()})
      await send('ota-run-0000', a)
      await expect.poll(() => last('ota-run-0000', a.id)?.state, {timeout: 20_000, interval: 100}).toBe('succeeded')
    } finally {
      stop.abort()
    }
    expect(await run).toMatchObject({devices: 1, ota_installs: 1, ota_failures: 0, ota_refusals: 0, ota_rollbacks: 0, ota_hangs: 0})
  })

  it('`simulate` without the key file says so once, runs, and refuses assignments with bad-signature', async () => {
    const stop = new AbortController()
    const lines: string[] = []
    const run = runSimulation(simulation('ota-nokey-run-', join(world.dir, 'no-such-key.pub'), stop.signal, (line) => void lines.push(line)))
    try {
      await expect.poll(() => seen.some((s) => s.device === 'ota-nokey-run-0000' && s.leaf === 'shadow/get'), {timeout: 20_000, interval: 50}).toBe(true)
      await send('ota-nokey-run-0000', assignment('ota-nokey-run-0000', {}))
      await send('ota-nokey-run-0000', assignment('ota-nokey-run-0000', {}))
      await expect.poll(() => progress('ota-nokey-run-0000').map((p) => p.reason), {timeout: 10_000, interval: 50}).toEqual(['bad-signature', 'bad-signature'])
    } finally {
      stop.abort()
    }
    expect(await run).toMatchObject({ota_refusals: 2, ota_installs: 0})
    expect(lines.filter((l) => l.includes('no firmware signing key is trusted'))).toHaveLength(1)
  })
})
