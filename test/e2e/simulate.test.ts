import type {FleetSummary} from '../../src/lib/simulator/index.js'
import {spawn} from 'node:child_process'
import {rm} from 'node:fs/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN, type CliResult} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, type Cli} from '../helpers/e2e-expect.js'

type Summary = FleetSummary & {registered: number}

/** `iotctl simulate` checks its input before it looks for a stack or a database. */
describe('iotctl simulate: input and preconditions (no stack)', () => {
  let cli: Cli
  let home: string

  beforeAll(async () => {
    ;({cli, home} = await boundCli())
  })
  afterAll(async () => {
    await rm(home, {recursive: true, force: true})
  })

  it('no dev stack and no --device-url → 3 E_NO_BROKER, naming both ways out', async () => {
    const err = expectJsonError(await cli(['simulate', '--count', '5', '-o', 'json']), 3, 'E_NO_BROKER')
    expect(err.hint).toMatch(/dev up --detach/)
    expect(err.hint).toMatch(/--device-url/)
    expectPlainError(await cli(['simulate', '--count', '5']), 3)
  })

  it.each([
    [['--count', '0'], 2, 'E_USAGE', /--count/],
    [['--count', '-3'], 2, 'E_USAGE', /--count/],
    [['--count', '5', '--qos', '2'], 2, 'E_USAGE', /--qos/],
    [['--count', '5', '--metrics', 'bad'], 4, 'E_METRICS', /"bad"/],
    [['--count', '5', '--metrics', 'temperature:26..18'], 4, 'E_METRICS', /min < max/],
    [['--count', '5', '--metrics', 't:1..2,t:3..4'], 4, 'E_METRICS', /twice/],
    [['--count', '5', '--anomaly-rate', '2'], 4, 'E_ANOMALY_RATE', /probability/],
    [['--count', '5', '--anomaly-rate', 'often'], 4, 'E_ANOMALY_RATE', /probability/],
    [['--count', '5', '--interval', '10ms'], 4, 'E_INTERVAL', /at least 100ms/],
    [['--count', '5', '--interval', 'soon'], 4, 'E_DURATION', /--interval/],
    [['--count', '5', '--duration', 'xyz'], 4, 'E_DURATION', /--duration "xyz"/],
    [['--count', '5', '--prefix', 'Sim/'], 4, 'E_PREFIX', /--prefix/],
  ] as Array<[string[], number, string, RegExp]>)('simulate %j → %i %s, Error:/Next: and no stack trace', async (args, exit, code, message) => {
    const r = await cli(['simulate', ...args, '-o', 'json'])
    const err = expectJsonError(r, exit, code)
    expect(err.message).toMatch(message)
    expect(err.hint, describeRun(r)).toBeTruthy()
    // The same without -o json: nothing on stdout, the human error on stderr.
    expectPlainError(await cli(['simulate', ...args]), exit)
  })
})

/**
 * The real thing: `dev up --detach` (embedded PostgreSQL, broker, ingest, shadow sync) under a
 * temporary IOTCTL_HOME, then `simulate` finds it without flags. afterAll always runs `dev down`.
 */
describe('iotctl simulate against a detached dev stack', {timeout: 120_000}, () => {
  let cli: Cli
  let home: string
  let env: Record<string, string | undefined>

  beforeAll(async () => {
    ;({cli, home, env} = await boundCli())
    const up = await cli(['dev', 'up', '--detach', '--mqtt-port', '0', '--service-port', '0', '-o', 'json'], {timeoutMs: 110_000})
    expect(up.code, describeRun(up)).toBe(0)
  }, 120_000)
  afterAll(async () => {
    const down = await cli(['dev', 'down'], {timeoutMs: 60_000})
    if (down.code !== 0) process.stderr.write(`dev down in afterAll failed:\n${describeRun(down)}\n`)
    else await rm(home, {recursive: true, force: true})
  }, 90_000)

  const ingestStats = async () => expectOk(await cli(['dev', 'status', '-o', 'json'])).services.ingest.stats as {messages: number; points: number; rejected: number; failures: number}
  const listed = async (selector: string) => expectOk<{items: Array<Record<string, any>>}>(await cli(['devices', 'list', '--selector', selector, '--limit', '1000', '-o', 'json'])).items

  it('unknown devices without --register → 3 E_SIM_DEVICES, suggesting --register; nothing is registered', async () => {
    const r = await cli(['simulate', '--count', '3', '--prefix', 'ghost-', '--duration', '1s', '-o', 'json'])
    const err = expectJsonError(r, 3, 'E_SIM_DEVICES')
    expect(err.message).toMatch(/3 of the 3 devices ghost-0000…ghost-0002 are not registered/)
    expect(err.hint).toMatch(/--register/)
    expect(await listed('simulated=true')).toEqual([])
  })

  it('simulate --count 20 --register --interval 1s --duration 5s -o json → the summary; every message acknowledged and stored', async () => {
    const before = await ingestStats()
    const r = await cli(['simulate', '--count', '20', '--register', '--interval', '1s', '--duration', '5s', '-o', 'json'], {timeoutMs: 90_000})
    const summary = expectOk<Summary>(r)
    expect(summary, describeRun(r)).toMatchObject({devices: 20, connected: 20, registered: 20, errors: 0, reconnects: 0, anomalies: 0})
    // One message a second per device for 5 s, from its first connection (the TLS ramp-up of 20
    // devices can take seconds on a loaded 2-core machine): at least two each, at most seven.
    expect(summary.sent, describeRun(r)).toBeGreaterThanOrEqual(40)
    expect(summary.sent).toBeLessThanOrEqual(20 * 7)
    expect(summary.acknowledged).toBe(summary.sent)
    expect(summary.duration_s).toBeGreaterThanOrEqual(5)
    // stdout is only the envelope; the progress lines (if any) go to stderr.
    expect(r.stdout.trim().startsWith('{')).toBe(true)

    // A PUBACK means stored: the ingest has every acknowledged message, two points each (default metrics).
    const after = await ingestStats()
    expect(after.messages - before.messages).toBe(summary.acknowledged)
    expect(after.points - before.points).toBe(2 * summary.acknowledged)
    expect(after.rejected - before.rejected).toBe(0)
    expect(after.failures).toBe(0)

    // The devices are registered (type sensor by default, labelled simulated=true) and went
    // offline when the run ended (their retained status and the broker's presence).
    const devices = await listed('simulated=true')
    expect(devices.map((d) => d.device_id)).toEqual(Array.from({length: 20}, (_, i) => `sim-${String(i).padStart(4, '0')}`))
    expect(new Set(devices.map((d) => `${d.device_type}/${d.status}`))).toEqual(new Set(['sensor/offline']))
  })

  it('again without --register: the devices exist now, so it runs; a table without -o json', async () => {
    const r = await cli(['simulate', '--count', '20', '--interval', '1s', '--duration', '2s'], {timeoutMs: 60_000})
    expect(r.code, describeRun(r)).toBe(0)
    expect(r.stdout).toMatch(/^DEVICES\s+SENT\s+ACKNOWLEDGED\s+RECONNECTS\s+ERRORS\s+DELTAS\s+OTA_INSTALLS\s+OTA_FAILED\s+SECONDS\n20\s+(\d+)\s+\1\s+0\s+0\s+\d+\s+0\s+0\s+[\d.]+\n$/)
    expect(r.stderr).toMatch(/simulating 20 devices against mqtts:\/\/127\.0\.0\.1:\d+ for 2s/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })

  it('--type, --firmware and --prefix register what they say; --metrics and --anomaly-rate 1 flag every message', async () => {
    const r = await cli(['simulate', '--count', '3', '--register', '--prefix', 'lab-', '--type', 'thermostat', '--firmware', '2.4.0',
      '--metrics', 'pressure:990..1030', '--anomaly-rate', '1', '--interval', '500ms', '--duration', '3s', '-o', 'json'], {timeoutMs: 60_000})
    const summary = expectOk<Summary>(r)
    expect(summary).toMatchObject({devices: 3, registered: 3, errors: 0})
    expect(summary.sent, describeRun(r)).toBeGreaterThanOrEqual(9)
    expect(summary.acknowledged).toBe(summary.sent)
    expect(summary.anomalies).toBe(summary.sent)
    const devices = await listed('simulated=true,type=thermostat')
    expect(devices.map((d) => [d.device_id, d.device_type, d.firmware_version])).toEqual([
      ['lab-0000', 'thermostat', '2.4.0'], ['lab-0001', 'thermostat', '2.4.0'], ['lab-0002', 'thermostat', '2.4.0']])
  })

  it('Ctrl-C (SIGINT) without --duration ends the run with the summary, exit 0', async () => {
    const child = spawn(process.execPath, [BIN, 'simulate', '--count', '5', '--interval', '500ms', '-o', 'json'],
      {env: Object.fromEntries(Object.entries({...process.env, ...env, CI: 'true', NO_COLOR: '1'}).filter(([, v]) => v !== undefined)) as NodeJS.ProcessEnv})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    const r = (code: number | null): CliResult => ({code, stdout, stderr, json: () => JSON.parse(stdout)})
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    try {
      // -o json prints nothing until the end; wait until the devices are sending (the ingest counts them).
      const before = await ingestStats()
      await expect.poll(async () => (await ingestStats()).messages - before.messages, {timeout: 45_000, interval: 500}).toBeGreaterThanOrEqual(10)
      child.kill('SIGINT')
      const summary = expectOk<Summary>(r(await closed))
      expect(summary).toMatchObject({devices: 5, errors: 0})
      expect(summary.sent).toBeGreaterThanOrEqual(10)
      expect(summary.acknowledged).toBe(summary.sent)
    } finally {
      clearTimeout(timer)
      child.kill('SIGKILL')
    }
  })
})
