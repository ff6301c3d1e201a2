import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {createServer} from 'node:net'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {FleetSummary} from '../../src/lib/simulator/index.js'
import {BIN, type CliResult} from '../helpers/cli.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectOk, type Cli} from '../helpers/e2e-expect.js'

type Summary = FleetSummary & {registered: number}

const PASSPHRASE = 'rollout-crash-e2e-passphrase'
const DEVICES = 40

/** A long-running CLI process (serve, simulate) with its output collected. */
interface Proc {
  proc: ChildProcess
  out: () => string
  err: () => string
  /** Resolves when it exited: the exit code, or the signal that ended it. */
  exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>
  done: Promise<CliResult>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A port free a moment ago: the standby's artifact server listens on it (see `controllers`). */
const freePort = () => new Promise<number>((resolve, reject) => {
  const server = createServer()
  server.once('error', reject)
  server.listen(0, '127.0.0.1', () => {
    const {port} = server.address() as {port: number}
    server.close(() => resolve(port))
  })
})

/**
 * The rollout controller killed (SIGKILL, via IOTCTL_FAULTS) at each named fault point, with the
 * services as separate processes as in production: `serve --components broker,ingest,shadow` and two
 * `serve --components controller` processes on the same database (leader by advisory lock, the other
 * a standby), devices from an `iotctl simulate` child. Whatever the crash, the standby takes over,
 * the rollout completes, and every device installs exactly once — counted by the devices themselves.
 */
describe('rollout controller crashes: a standby takes over, every device installs exactly once', {timeout: 120_000}, () => {
  let db: TestDatabase
  let cli: Cli
  let home: string
  let env: Record<string, string | undefined>
  let brokerProc: Proc
  let servicePort: number
  let devicePort: number
  const procs: Proc[] = []
  const fleets = new Map<string, Proc>()
  const TYPES = ['cr-disp', 'cr-pub', 'cr-adv', 'cr-two']
  const caDir = () => join(home, 'ca')
  const keysDir = () => join(home, 'keys')
  const artifactDir = () => join(home, 'artifacts')

  const start = (args: string[], extraEnv: Record<string, string> = {}): Proc => {
    const childEnv = Object.fromEntries(Object.entries({...process.env, ...env, CI: 'true', NO_COLOR: '1', ...extraEnv})
      .filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv
    const proc = spawn(process.execPath, [BIN, ...args], {env: childEnv, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    proc.stdout!.on('data', (d) => (stdout += d))
    proc.stderr!.on('data', (d) => (stderr += d))
    const exited = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => proc.on('exit', (code, signal) => resolve({code, signal})))
    const done = new Promise<CliResult>((resolve) => proc.on('close', (code) => resolve({code, stdout, stderr, json: () => JSON.parse(stdout)})))
    const p = {proc, out: () => stdout, err: () => stderr, exited, done}
    procs.push(p)
    return p
  }
  const stopProc = async (p: Proc, signal: NodeJS.Signals = 'SIGTERM') => {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal)
    return p.done
  }
  const waitFor = async (p: Proc, pattern: RegExp, what: string, timeout = 30_000) => {
    // A plain loop, not expect.poll: beforeAll uses it too.
    const deadline = Date.now() + timeout
    while (!pattern.test(p.err()) && p.proc.exitCode === null && p.proc.signalCode === null && Date.now() < deadline) await sleep(200)
    expect(p.err(), `${what}\n--- stdout ---\n${p.out()}\n--- stderr ---\n${p.err()}`).toMatch(pattern)
  }

  /** A controller process: its own service identity, the shared signing key and artifact store. */
  const controller = (identity: string, artifact: {port: number; url: string}, faults?: string): Proc => start(['serve', '--components', 'controller',
    '--broker-url', `mqtts://127.0.0.1:${servicePort}`, '--identity', join(home, identity), '--ca-dir', caDir(), '--keys-dir', keysDir(),
    '--artifact-dir', artifactDir(), '--artifact-port', String(artifact.port), '--artifact-url', artifact.url, '-o', 'json'],
  faults ? {IOTCTL_FAULTS: faults} : {})

  /**
   * Two controllers: `first` leads (it is started alone and waited for), `second` stands by. Both
   * hand out download URLs of the standby's artifact server — what a load balancer in front of the
   * controllers gives in production. A URL of the leader's own server would die with it: an assignment
   * published just before the crash could never be downloaded, and its republished copy is (rightly)
   * a duplicate to the device.
   */
  const controllers = async (faults?: string) => {
    const port = await freePort()
    const url = `https://127.0.0.1:${port}`
    const leader = controller('ctl-a', {port: 0, url}, faults)
    await waitFor(leader, /\[controller\] leader: driving rollouts/, 'controller A leads')
    // The standby starts while A already drives the rollout; it takes over whenever A is gone.
    const standby = controller('ctl-b', {port, url})
    return {leader, standby}
  }

  const devices = async (type: string) =>
    expectOk<{items: Array<{device_id: string; status: string; last_seen_at: string | null; firmware_version: string | null}>}>(
      await cli(['devices', 'list', '--type', type, '--limit', '1000', '-o', 'json'])).items

  /** A fleet of DEVICES simulated devices of `type` on 1.0.0, and firmware `type`@2.0.0 uploaded. */
  const fleet = async (type: string): Promise<Proc> => {
    const sim = start(['simulate', '--count', String(DEVICES), '--prefix', `${type}-`, '--register', '--type', type, '--firmware', '1.0.0',
      '--device-url', `mqtts://127.0.0.1:${devicePort}`, '--ca-dir', caDir(), '--firmware-key', join(keysDir(), 'firmware-signing.pub'),
      '--interval', '30s', '--duration', '300s', '-o', 'json'])
    const file = join(home, `${type}.bin`)
    await writeFile(file, randomBytes(100_000))
    const r = await cli(['firmware', 'upload', file, '--version', '2.0.0', '--device-type', type, '--ca-dir', caDir(), '--keys-dir', keysDir(), '--artifact-dir', artifactDir(), '-o', 'json'])
    expect(r.code, describeRun(r)).toBe(0)
    fleets.set(type, sim)
    return sim
  }
  /**
   * Its devices are all online (their status reached the ingest). The next scenario's fleet starts
   * now, to connect while this one runs (each `simulate` counts its own installs).
   */
  const online = async (type: string) => {
    if (!fleets.has(type)) await fleet(type) // a scenario run alone (-t)
    const next = TYPES[TYPES.indexOf(type) + 1]
    if (next && !fleets.has(next)) await fleet(next)
    await expect.poll(async () => (await devices(type)).filter((d) => d.status === 'active' && d.last_seen_at !== null).length,
      {timeout: 60_000, interval: 1000}).toBe(DEVICES)
    return fleets.get(type)!
  }

  /** The rollout completes; the registry, the rollout and the devices' own count agree: each installed once. */
  const expectExactlyOnce = async (name: string, type: string, sim: Proc) => {
    const wait = await cli(['rollout', 'wait', name, '--timeout', '60s', '-o', 'json'], {timeoutMs: 70_000})
    const waited = expectOk(wait)
    expect(waited.state).toBe('completed')
    const [status] = await Promise.all([
      cli(['rollout', 'status', name, '-o', 'json']).then((r) => expectOk(r)),
      expect.poll(async () => (await devices(type)).map((d) => d.firmware_version), {timeout: 15_000, interval: 1000})
        .toEqual(Array.from({length: DEVICES}, () => '2.0.0')),
    ])
    expect(status.counts, JSON.stringify(status)).toMatchObject({succeeded: DEVICES, failed: 0, 'timed-out': 0, pending: 0})
    expect(status.per_stage.map((s: {size: number}) => s.size)).toEqual([4, 16, 20]) // 10%, 50%, 100% of 40
    sim.proc.kill('SIGINT')
    const r = await sim.done
    const summary = expectOk<Summary>(r)
    // ota_installs counts completed installs in the devices: N exactly means none installed twice.
    expect(summary, describeRun(r)).toMatchObject({devices: DEVICES, ota_installs: DEVICES, ota_refusals: 0, ota_failures: 0, errors: 0})
  }

  /** Stop controllers with SIGTERM: a clean stop, exit 0, no stack trace. */
  const stopControllers = async (...cs: Proc[]) => {
    for (const stopped of await Promise.all(cs.map((c) => stopProc(c)))) {
      expect(stopped.code, describeRun(stopped)).toBe(0)
      expect(stopped.stderr).not.toMatch(/\n\s+at /)
    }
  }

  const create = async (name: string, type: string) => {
    const r = expectOk(await cli(['rollout', 'create', name, '--firmware', `${type}@2.0.0`, '--stages', '10,50,100', '--soak', '1s', '--min-decided', '3', '--start', '-o', 'json']))
    expect(r).toMatchObject({state: 'running', target_count: DEVICES})
  }

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli, home, env} = await boundCli(db.url, {IOTCTL_CA_PASSPHRASE: PASSPHRASE}))
    for (const args of [['ca', 'init', '--ca-dir', caDir()], ['certs', 'crl', '--ca-dir', caDir()]]) {
      const r = await cli([...args, '-o', 'json'])
      expect(r.code, describeRun(r)).toBe(0)
    }
    await Promise.all([['keys', 'init', '--keys-dir', keysDir()], ...['ctl-a', 'ctl-b'].map((name) => ['certs', 'issue', '--operator', name, '--out', join(home, name), '--ca-dir', caDir()])]
      .map(async (args) => {
        const r = await cli([...args, '-o', 'json'])
        expect(r.code, describeRun(r)).toBe(0)
      }))
    brokerProc = start(['serve', '--components', 'broker,ingest,shadow', '--ca-dir', caDir(), '--mqtt-port', '0', '--service-port', '0', '-o', 'json'])
    await waitFor(brokerProc, /\[serve\] ready/, 'the broker process is ready')
    const result = JSON.parse(brokerProc.out()).result as {broker: {devicePort: number; servicePort: number}}
    ;({devicePort, servicePort} = result.broker)
    await fleet(TYPES[0]!)
  }, 120_000)

  afterAll(async () => {
    for (const p of procs.filter((q) => q !== brokerProc)) p.proc.kill('SIGKILL')
    await Promise.all(procs.filter((q) => q !== brokerProc).map((p) => p.done))
    if (brokerProc) {
      const r = await stopProc(brokerProc)
      if (r.code !== 0) process.stderr.write(`the broker process did not stop cleanly:\n${describeRun(r)}\n`)
    }
    await db?.drop()
    if (home) await rm(home, {recursive: true, force: true})
  }, 60_000)

  it.each([
    ['rollout.after_dispatch', 'cr-disp'],
    ['rollout.after_publish', 'cr-pub'],
    ['rollout.after_advance', 'cr-adv'],
  ])('controller A dies at %s: B takes over, the rollout completes, %s devices install exactly once', async (point, type) => {
    const sim = await online(type)
    const {leader, standby} = await controllers(`${point}:crash`)
    await create(`${type}-200`, type)
    // A reaches the fault point and is killed by it (SIGKILL, as a power cut: no cleanup, no unlock).
    const exit = await Promise.race([leader.exited, new Promise<'alive'>((resolve) => setTimeout(() => resolve('alive'), 30_000))])
    expect(exit, leader.err()).toEqual({code: null, signal: 'SIGKILL'})
    expect(leader.err()).toContain(`fault injected at ${point}: crashing`)
    // The standby notices the lock is free and drives the rollout to the end.
    await waitFor(standby, /\[controller\] leader: driving rollouts/, 'controller B takes over')
    await expectExactlyOnce(`${type}-200`, type, sim)
    await stopControllers(standby)
  })

  it('two controllers started at once, no faults: one leads, the rollout completes, devices install exactly once', async () => {
    const sim = await online('cr-two')
    const port = await freePort()
    const url = `https://127.0.0.1:${port}`
    const both = [controller('ctl-a', {port, url}), controller('ctl-b', {port: 0, url})]
    for (const c of both) await waitFor(c, /\[serve\] ready/, 'a controller is ready')
    await create('cr-two-200', 'cr-two')
    await expectExactlyOnce('cr-two-200', 'cr-two', sim)
    const leaders = both.filter((c) => /leader: driving rollouts/.test(c.err()))
    expect(leaders, both.map((c) => c.err()).join('\n----\n')).toHaveLength(1)
    await stopControllers(...both)
  })
})
