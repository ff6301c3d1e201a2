import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'
import mqtt, {type MqttClient} from 'mqtt'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, expectOk, type Cli} from '../helpers/e2e-expect.js'

/**
 * `telemetry tail` against a detached dev stack: a message from Debian's mosquitto_pub (a device
 * no one here wrote) shows within a second, and --since replays history then continues live
 * without a gap or a duplicate at the boundary.
 */
describe('telemetry tail', () => {
  let cli: Cli
  let home: string
  let env: Record<string, string | undefined>
  let devicePort: number
  const tails: ChildProcess[] = []
  const devices: MqttClient[] = []

  beforeAll(async () => {
    ;({cli, home, env} = await boundCli())
    const up = await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '-o', 'json'], {timeoutMs: 110_000})
    expect(up.code, describeRun(up)).toBe(0)
    devicePort = Number(new URL(expectOk<{mqtt_url: string}>(up).mqtt_url).port)
    for (const id of ['tail-pub', 'tail-seq']) {
      expectOk(await cli(['devices', 'register', id, '--type', 'sensor', '-o', 'json']))
      expectOk(await cli(['certs', 'issue', id, '--out', join(home, id), '-o', 'json']))
    }
  }, 150_000)

  afterAll(async () => {
    for (const t of tails) t.kill('SIGKILL')
    await Promise.all(devices.map((d) => d.endAsync(true)))
    const down = await cli(['dev', 'down'])
    if (down.code === 0) await rm(home, {recursive: true, force: true})
  })

  /** Start `telemetry tail …` and collect its JSON lines; resolves once it is subscribed. */
  function tail(args: string[]): {lines: Array<Record<string, any>>; exited: Promise<number | null>; stderr: () => string} {
    const childEnv: NodeJS.ProcessEnv = {...process.env, ...env, CI: 'true'}
    for (const k of Object.keys(childEnv)) if (childEnv[k] === undefined) delete childEnv[k]
    const child = spawn(process.execPath, [BIN, 'telemetry', 'tail', ...args], {env: childEnv, stdio: ['ignore', 'pipe', 'pipe']})
    tails.push(child)
    const lines: Array<Record<string, any>> = []
    let partial = ''
    let stderr = ''
    child.stdout!.on('data', (d: Buffer) => {
      partial += d
      const parts = partial.split('\n')
      partial = parts.pop()!
      for (const p of parts) if (p) lines.push({...JSON.parse(p), at: Date.now()})
    })
    child.stderr!.on('data', (d) => (stderr += d))
    return {lines, exited: new Promise((resolve) => child.once('exit', resolve)), stderr: () => stderr}
  }

  const files = (id: string) => ({cert: join(home, id, 'device.crt'), chain: join(home, id, 'chain.pem'), key: join(home, id, 'device.key')})
  const trust = async () => (await readFile(join(home, 'ca', 'root.crt'), 'utf8')) + (await readFile(join(home, 'ca', 'service-ca.crt'), 'utf8'))

  it('shows a message from mosquitto_pub within 1 s', async () => {
    const t = tail(['--device', 'tail-pub', '--max-messages', '1'])
    await new Promise((r) => setTimeout(r, 3000)) // node start-up and SUBSCRIBE
    const f = files('tail-pub')
    const bundle = join(home, 'tail-pub', 'bundle.pem')
    const trustFile = join(home, 'trust.pem')
    await import('node:fs/promises').then(async (fs) => {
      await fs.writeFile(bundle, (await fs.readFile(f.cert, 'utf8')) + (await fs.readFile(f.chain, 'utf8')))
      await fs.writeFile(trustFile, await trust())
    })
    const ts = Date.now()
    await new Promise<void>((resolve, reject) => execFile('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(devicePort), '--cafile', trustFile,
      '--cert', bundle, '--key', f.key, '-i', 'tail-pub', '--tls-version', 'tlsv1.3', '-q', '1', '-t', 'devices/tail-pub/telemetry',
      '-m', JSON.stringify({ts, seq: 1, metrics: {temperature: 21.5}})], (error, _o, err) => (error ? reject(new Error(`mosquitto_pub: ${err}`)) : resolve())))
    const sent = Date.now()
    expect(await t.exited, t.stderr()).toBe(0)
    expect(t.lines).toHaveLength(1)
    expect(t.lines[0]).toMatchObject({device_id: 'tail-pub', seq: 1, metrics: {temperature: 21.5}, source: 'live', ts: new Date(ts).toISOString()})
    expect(t.lines[0]!.at - sent).toBeLessThan(1000)
  }, 60_000)

  it('--since replays history, then continues live: every sequence number once, none missing', async () => {
    const f = files('tail-seq')
    const device = await mqtt.connectAsync(`mqtts://127.0.0.1:${devicePort}`, {clientId: 'tail-seq', cert: (await readFile(f.cert, 'utf8')) + (await readFile(f.chain, 'utf8')),
      key: await readFile(f.key, 'utf8'), ca: await trust(), reconnectPeriod: 0, protocolVersion: 4})
    devices.push(device)
    let seq = 0
    let publishing = true
    const loop = (async () => {
      while (publishing) {
        await device.publishAsync('devices/tail-seq/telemetry', JSON.stringify({ts: Date.now(), seq: seq++, metrics: {v: seq}}), {qos: 1})
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    await new Promise((r) => setTimeout(r, 1500)) // some history first
    const t = tail(['--device', 'tail-seq', '--since', '1h', '--max-messages', '300'])
    expect(await t.exited, t.stderr()).toBe(0)
    publishing = false
    await loop
    const seqs = t.lines.map((l) => l.seq as number)
    expect(seqs).toEqual(Array.from({length: 300}, (_, i) => i))
    expect(t.lines.some((l) => l.source === 'history')).toBe(true)
    expect(t.lines.some((l) => l.source === 'live')).toBe(true)
  }, 60_000)

  it('bad input: unknown device exit 3, --since not a duration exit 4, --device with --selector exit 2', async () => {
    expectJsonError(await cli(['telemetry', 'tail', '--device', 'no-such-device', '-o', 'json']), 3, 'E_DEVICE_NOT_FOUND')
    expectJsonError(await cli(['telemetry', 'tail', '--since', 'yesterday', '-o', 'json']), 4, 'E_DURATION')
    expectJsonError(await cli(['telemetry', 'tail', '--device', 'tail-seq', '--selector', 'a=b', '-o', 'json']), 2, 'E_USAGE')
  })
})
