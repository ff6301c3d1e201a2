import {spawn, type ChildProcess} from 'node:child_process'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {issueDeviceCertificates} from '../../src/lib/pki/index.js'
import {registerDevice, toDeviceInput} from '../../src/lib/registry/index.js'
import {getShadow, setDesired} from '../../src/lib/shadow/index.js'
import {startDevBroker} from '../../src/lib/stack/dev-broker.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {caPem, cleanup, tempDir} from '../helpers/pki-fixtures.js'

/**
 * A device no one here wrote: Debian's mosquitto-clients, given only what docs/PROTOCOL.md tells a
 * device (files from `certs issue`, exact topics, AWS-shaped payloads), against the dev stack's
 * wiring (embedded broker + shadow sync + PostgreSQL), as `iotctl dev up` runs it.
 *
 * The embedded broker allows one session per client id (= the certificate's CN), and a second
 * connection with the same id takes the first one's session over. So a device's conversation is a
 * sequence of connections, one program each:
 *  - `mosquitto_sub` listens on the exact topics (wildcard filters are refused) for deltas;
 *  - `mosquitto_rr` (request/response client, mosquitto-clients ≥ 2.0) does get and update: in ONE
 *    session it subscribes to the answer topic, publishes the request, prints the first answer;
 *  - `mosquitto_pub` reports state fire-and-forget (the answer goes to a topic nobody listens to).
 * The broker speaks MQTT 3.1.1 (aedes); mosquitto_rr defaults to MQTT 5, hence `-V mqttv311`.
 *
 * The clients are installed here and in CI: without them every test fails, never skips.
 */

const CLIENTS = ['mosquitto_sub', 'mosquitto_pub', 'mosquitto_rr'] as const

interface Received {
  topic: string
  retain: boolean
  /** The payload parsed as JSON, or null for an empty payload (the cleared retained delta). */
  body: any
}

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** One line of `-F %j` output (mosquitto's JSON message format) as a message. */
function parseMessage(line: string): Received {
  const m = JSON.parse(line) as {topic: string; retain: boolean | number; payload: string}
  return {topic: m.topic, retain: Boolean(m.retain), body: m.payload === '' ? null : JSON.parse(m.payload)}
}

const messagesIn = (stdout: string): Received[] => stdout.split('\n').filter((l) => l.startsWith('{')).map(parseMessage)

/** Fails (never skips) when a client program cannot be started at all. */
function requireClient(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(name, ['--help'], {stdio: 'ignore'})
    child.once('error', (error) => reject(new Error(`${name} is required (Debian package mosquitto-clients) and could not be run: ${error.message}`)))
    child.once('exit', () => resolve())
  })
}

describe('a third-party device (mosquitto-clients) against the dev stack, following docs/PROTOCOL.md', () => {
  let db: TestDatabase
  let home: string
  let services: Awaited<ReturnType<typeof startDevBroker>>
  const ids = ['tp-cycle', 'tp-pub', 'tp-reject']
  const files = new Map<string, {cert: string; key: string; trust: string}>()
  const running = new Set<ChildProcess>()

  beforeAll(async () => {
    for (const name of CLIENTS) await requireClient(name)
    db = await freshDatabase()
    home = await tempDir('shadow-third-party')
    const silent = () => undefined
    services = await startDevBroker({home, db, mqttPort: 0, servicePort: 0, logs: {broker: silent, ingest: silent, shadow: silent}})
    const caDir = join(home, 'ca')
    const passphrase = (await readFile(join(caDir, 'dev-passphrase'), 'utf8')).trim()
    for (const id of ids) await registerDevice(db, toDeviceInput({device_id: id, device_type: 'thermostat'}))
    const trust = join(home, 'trust.pem') // root CA + the service CA that signed the broker's certificate
    await writeFile(trust, await caPem(caDir, 'root.crt', 'service-ca.crt'))
    for (const issued of await issueDeviceCertificates(db, {caDir, passphrase, deviceIds: ids, days: 30})) {
      const id = issued.record.subject_name
      const dir = join(home, 'devices', id)
      await mkdir(dir, {recursive: true})
      const cert = join(dir, 'device.crt')
      const key = join(dir, 'device.key')
      await writeFile(cert, issued.certificate + issued.chain) // the certificate with its chain
      await writeFile(key, issued.private_key!, {mode: 0o600})
      files.set(id, {cert, key, trust})
    }
  }, 120_000)

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL')
    await services?.broker.close()
    await services?.firmware.stop()
    await services?.shadow.stop()
    await db?.drop()
    await cleanup(home)
  })

  /** The connection options PROTOCOL.md gives: mutual TLS 1.3, client id = CN = device id. */
  function connection(id: string): string[] {
    const f = files.get(id)!
    return ['-h', '127.0.0.1', '-p', String(services.broker.devicePort), '--cafile', f.trust, '--cert', f.cert, '--key', f.key,
      '-i', id, '--tls-version', 'tlsv1.3', '-V', 'mqttv311']
  }

  function start(program: (typeof CLIENTS)[number], args: string[]) {
    const child = spawn(program, args, {stdio: ['ignore', 'pipe', 'pipe']})
    running.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    const done = new Promise<Run>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code, signal) => {
        running.delete(child)
        resolve({code, signal, stdout, stderr})
      })
    })
    return {child, done, stdout: () => stdout, stderr: () => stderr}
  }

  /** Run to the end; killed after `timeoutMs`. */
  async function run(program: (typeof CLIENTS)[number], args: string[], timeoutMs = 20_000): Promise<Run> {
    const p = start(program, args)
    const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs)
    try {
      return await p.done
    } finally {
      clearTimeout(timer)
    }
  }

  const describeRun = (program: string, r: Run) => `${program} exited ${r.code} (${r.signal})\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`

  /**
   * `mosquitto_sub` on exact topics, QoS 1, one JSON line per message (`-F %j`), with debug lines
   * (`-d`) to see the SUBACK. Resolves once the broker granted every subscription.
   */
  async function subscribe(id: string, leaves: string[]) {
    const topics = leaves.flatMap((leaf) => ['-t', `devices/${id}/${leaf}`])
    const sub = start('mosquitto_sub', [...connection(id), '-q', '1', '-d', '-F', '%j', ...topics])
    await expect.poll(() => sub.stdout().includes('received SUBACK') || sub.child.exitCode !== null, {timeout: 45_000}).toBe(true)
    expect(sub.child.exitCode, `mosquitto_sub ended before subscribing:\n${sub.stdout()}\n${sub.stderr()}`).toBeNull()
    // Granted QoS per filter ("Subscribed (mid: 1): 1, 1, 1"); 128 would be a refusal.
    await expect.poll(() => /Subscribed \(mid: \d+\): ([\d, ]+)/.exec(sub.stdout())?.[1]?.split(', ').map(Number), {timeout: 5000})
      .toEqual(leaves.map(() => 1))
    return {
      ...sub,
      messages: () => messagesIn(sub.stdout()),
      stop: async () => {
        sub.child.kill('SIGTERM')
        return sub.done
      },
    }
  }

  /** `mosquitto_rr`: publish `request` on `shadow/{leaf}` and print the first message on `shadow/{answer}`, in one session. */
  async function request(id: string, leaf: string, answer: string, request: unknown): Promise<Received> {
    const r = await run('mosquitto_rr', [...connection(id), '-q', '1', '-W', '15', '-F', '%j',
      '-t', `devices/${id}/shadow/${leaf}`, '-e', `devices/${id}/shadow/${answer}`, '-m', JSON.stringify(request)])
    expect(r.code, describeRun('mosquitto_rr', r)).toBe(0)
    const messages = messagesIn(r.stdout)
    expect(messages, describeRun('mosquitto_rr', r)).toHaveLength(1)
    expect(messages[0]!.topic).toBe(`devices/${id}/shadow/${answer}`)
    return messages[0]!
  }

  it('A third-party client (Debian\'s mosquitto_sub/mosquitto_pub) follows docs/PROTOCOL.md alone and completes the get/update/delta cycle', async () => {
    const id = 'tp-cycle'
    // 1. An operator sets desired state while the device is offline.
    await setDesired(db, id, {target_temperature: 72, mode: 'cooling'})

    // 2. The device connects and subscribes: the retained delta is waiting for it.
    const sub = await subscribe(id, ['shadow/delta', 'shadow/get/accepted', 'shadow/update/accepted'])
    try {
      await expect.poll(() => sub.messages().find((m) => m.topic === `devices/${id}/shadow/delta` && m.body), {timeout: 10_000}).toBeDefined()
      const first = sub.messages().find((m) => m.topic === `devices/${id}/shadow/delta` && m.body)!
      expect(first.body).toMatchObject({state: {target_temperature: 72, mode: 'cooling'}, version: 1,
        metadata: {target_temperature: {timestamp: expect.any(Number)}, mode: {timestamp: expect.any(Number)}}, timestamp: expect.any(Number)})
      expect(sub.messages().some((m) => m.retain && m.body?.version === 1), 'the delta waiting for an offline device is retained').toBe(true)

      // 3. While it is connected, a change of desired state arrives live.
      await setDesired(db, id, {mode: 'heating'})
      await expect.poll(() => sub.messages().filter((m) => m.body?.version === 2).at(-1)?.body, {timeout: 10_000})
        .toMatchObject({state: {target_temperature: 72, mode: 'heating'}, version: 2})
    } finally {
      // One session per client id: the subscriber leaves before the next program connects as the device.
      const r = await sub.stop()
      expect(r.stdout).not.toMatch(/denied|refused/i)
    }

    // 4. get → get/accepted: the whole document, echoing the clientToken.
    const got = await request(id, 'get', 'get/accepted', {clientToken: 'get-1'})
    expect(got.body).toMatchObject({
      state: {desired: {target_temperature: 72, mode: 'heating'}, reported: {}, delta: {target_temperature: 72, mode: 'heating'}},
      metadata: {desired: {mode: {timestamp: expect.any(Number)}}},
      version: 2,
      clientToken: 'get-1',
    })

    // 5. update (reported, at the version just read) → update/accepted, with no delta left.
    const updated = await request(id, 'update', 'update/accepted',
      {state: {reported: {target_temperature: 72, mode: 'heating'}}, clientToken: 'upd-1', version: 2})
    expect(updated.body).toMatchObject({state: {reported: {target_temperature: 72, mode: 'heating'}}, version: 3, clientToken: 'upd-1',
      metadata: {reported: {mode: {timestamp: expect.any(Number)}}}})
    expect(updated.body).not.toHaveProperty('delta')

    // 6. The delta is cleared: a new connection finds no retained delta, and get shows none.
    const after = await subscribe(id, ['shadow/delta'])
    await new Promise((r) => setTimeout(r, 1500))
    await after.stop()
    expect(after.messages().filter((m) => m.body !== null), after.stdout()).toEqual([])
    const again = await request(id, 'get', 'get/accepted', {clientToken: 'get-2'})
    expect(again.body).toMatchObject({state: {desired: {target_temperature: 72, mode: 'heating'}, reported: {target_temperature: 72, mode: 'heating'}}, version: 3})
    expect(again.body.state).not.toHaveProperty('delta')

    const doc = await getShadow(db, id)
    expect(doc.version).toBe(3)
    expect(doc.state.delta).toBeUndefined()
    const {rows} = await db.pool.query('SELECT h.version, h.actor, s.pending_since FROM shadow_history h JOIN shadows s USING (device_id) WHERE device_id = $1 ORDER BY h.version', [id])
    expect(rows.map((r: {version: string; actor: string}) => [Number(r.version), r.actor.split(':')[0]])).toEqual([[1, 'cli'], [2, 'cli'], [3, 'device']])
    expect(rows.every((r: {pending_since: Date | null}) => r.pending_since === null)).toBe(true)
  }, 120_000)

  it('mosquitto_pub alone reports state (QoS 1, fire-and-forget): the next connection finds no delta', async () => {
    const id = 'tp-pub'
    await setDesired(db, id, {fan: 'auto', schedule: {night: 18}})
    // Connect, take the delta that waits (retained), leave (-C 1).
    const delivered = await run('mosquitto_sub', [...connection(id), '-q', '1', '-F', '%j', '-t', `devices/${id}/shadow/delta`, '-C', '1', '-W', '15'])
    expect(delivered.code, describeRun('mosquitto_sub', delivered)).toBe(0)
    expect(messagesIn(delivered.stdout).map((m) => m.body)).toMatchObject([{state: {fan: 'auto', schedule: {night: 18}}, version: 1}])

    const pub = await run('mosquitto_pub', [...connection(id), '-q', '1', '-t', `devices/${id}/shadow/update`,
      '-m', JSON.stringify({state: {reported: {fan: 'auto', schedule: {night: 18}}}, clientToken: 'pub-1'})])
    expect(pub.code, describeRun('mosquitto_pub', pub)).toBe(0)
    // The PUBACK comes after the update was applied (the shadow service runs before the acknowledgement).
    expect((await getShadow(db, id)).state).toEqual({desired: {fan: 'auto', schedule: {night: 18}}, reported: {fan: 'auto', schedule: {night: 18}}})

    const after = await subscribe(id, ['shadow/delta'])
    await new Promise((r) => setTimeout(r, 1500))
    await after.stop()
    expect(after.messages().filter((m) => m.body !== null)).toEqual([])
  }, 60_000)

  it('refusals follow the protocol too: wildcard filters, desired state from a device, version conflicts, bad keys', async () => {
    const id = 'tp-reject'
    await setDesired(db, id, {mode: 'eco'})

    // A wildcard filter, even inside the device's own subtree, is refused with SUBACK 0x80.
    const wildcard = await run('mosquitto_sub', [...connection(id), '-q', '1', '-d', '-t', `devices/${id}/#`, '-W', '5'])
    expect(wildcard.stdout, describeRun('mosquitto_sub', wildcard)).toMatch(/Subscribed \(mid: \d+\): 128\n/)
    expect(wildcard.stderr).toMatch(/All subscription requests were denied/)

    const desired = await request(id, 'update', 'update/rejected', {state: {desired: {mode: 'off'}}, clientToken: 'd-1'})
    expect(desired.body).toMatchObject({code: 403, clientToken: 'd-1'})
    const stale = await request(id, 'update', 'update/rejected', {state: {reported: {mode: 'eco'}}, version: 0, clientToken: 'v-0'})
    expect(stale.body).toMatchObject({code: 409, version: 1, clientToken: 'v-0'})
    const badKey = await request(id, 'update', 'update/rejected', {state: {reported: {'not a key': 1}}})
    expect(badKey.body).toMatchObject({code: 400})
    expect(badKey.body.message).toContain('state.reported.not a key')
    // `__proto__` must not reach Object.prototype of the service process (this one, here).
    try {
      const proto = await request(id, 'update', 'update/rejected', {state: {reported: JSON.parse('{"__proto__": {"polluted": 1}}')}, clientToken: 'p-1'})
      expect(proto.body).toMatchObject({code: 400, clientToken: 'p-1'})
    } finally {
      const polluted = ({} as Record<string, unknown>).polluted
      delete (Object.prototype as Record<string, unknown>).polluted // keep a failure here from spreading to the rest of the run
      expect(polluted, 'Object.prototype was polluted by a device payload').toBeUndefined()
    }

    const doc = await getShadow(db, id)
    expect(doc.version).toBe(1)
    expect(doc.state).toEqual({desired: {mode: 'eco'}, reported: {}, delta: {mode: 'eco'}})
  }, 90_000)
})
