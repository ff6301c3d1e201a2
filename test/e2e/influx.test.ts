import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BIN} from '../helpers/cli.js'
import {boundCli, describeRun, expectJsonError, USER_ENV, type Cli} from '../helpers/e2e-expect.js'
import {connectWith, pkiWorld, type PkiWorld} from '../helpers/mqtt-world.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'
import {startVictoriaMetrics, type RunningVictoriaMetrics} from '../helpers/victoria-metrics.js'

const TOKEN = 'tok-s3cret-never-printed'

describe('iotctl with an InfluxDB telemetry sink (VictoriaMetrics as the server)', () => {
  let world: PkiWorld
  let cli: Cli
  let vm: RunningVictoriaMetrics
  let guarded: RunningVictoriaMetrics

  beforeAll(async () => {
    world = await pkiWorld({prefix: 'influx-e2e', devices: ['i1']})
    ;({cli} = await boundCli(world.db.url, {IOTCTL_CA_PASSPHRASE: PASSPHRASE}))
    vm = await startVictoriaMetrics()
    // Basic Auth on: the client's `Authorization: Token …` is refused with 401, as a bad token is by InfluxDB.
    guarded = await startVictoriaMetrics({basicAuth: {username: 'iot', password: 'right'}})
  }, 60_000)

  afterAll(async () => {
    await vm?.close()
    await guarded?.close()
    await world?.close()
  })

  const serveArgs = (url: string) => ['serve', '--components', 'broker,ingest', '--ca-dir', world.caDir, '--mqtt-port', '0', '--service-port', '0',
    '--influx-url', url, '--influx-org', 'acme', '--influx-bucket', 'iot', '-o', 'json']

  it('a bad token: serve exits 6 at start with the server\'s reason and a next step, the token nowhere', async () => {
    const r = await cli([...serveArgs(guarded.url), '--telemetry-sink', 'postgres,influx'], {env: {IOTCTL_INFLUX_TOKEN: TOKEN}})
    const error = expectJsonError(r, 6, 'E_INFLUX_REFUSED', {atStart: false})
    expect(error.message).toMatch(/^telemetry sink influx stopped: InfluxDB at http:\/\/127\.0\.0\.1:\d+\/? answered 401 Unauthorized/)
    expect(error.hint).toContain('--influx-token')
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
  })

  it('dev up with a refused token: exit 6 with the reason, no stack left running, the token nowhere', async () => {
    const {cli: dev, home} = await boundCli(undefined)
    const r = await dev(['dev', 'up', '--mqtt-port', '0', '--service-port', '0', '--telemetry-sink', 'postgres,influx', '--influx-url', guarded.url,
      '--influx-org', 'acme', '--influx-bucket', 'iot', '-o', 'json'], {env: {IOTCTL_INFLUX_TOKEN: TOKEN}})
    const error = expectJsonError(r, 6, 'E_INFLUX_REFUSED', {atStart: false})
    expect(error.message).toMatch(/answered 401 Unauthorized/)
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
    const status = await dev(['dev', 'status', '-o', 'json'], {env: {IOTCTL_HOME: home}})
    expect(expectJsonError(status, 3, 'E_STACK_NOT_RUNNING').data).toMatchObject({running: false})
  }, 60_000)

  it('refuses incomplete or unknown sink settings before connecting anywhere', async () => {
    const cases: Array<[string[], number, string]> = [
      [['serve', '--components', 'ingest,broker', '--telemetry-sink', 'mysql'], 2, 'E_TELEMETRY_SINK'],
      [['serve', '--components', 'broker,ingest', '--ca-dir', world.caDir, '--telemetry-sink', 'influx', '--influx-url', 'http://127.0.0.1:1'], 2, 'E_INFLUX_SETTINGS'],
      [['serve', '--components', 'broker,ingest', '--ca-dir', world.caDir, '--telemetry-sink', 'influx', '--influx-url', 'ftp://x', '--influx-token', 't',
        '--influx-org', 'o', '--influx-bucket', 'b'], 2, 'E_INFLUX_SETTINGS'],
    ]
    for (const [args, exit, code] of cases) expectJsonError(await cli([...args, '-o', 'json']), exit, code, {atStart: false})
    expectJsonError(await cli(['dev', 'up', '--telemetry-sink', 'influx', '-o', 'json']), 2, 'E_INFLUX_SETTINGS')
  })

  it('telemetry query against a server without Flux is exit 6 with its answer', async () => {
    const r = await cli(['telemetry', 'query', '--device', 'i1', '--metric', 't', '--since', '1h', '--telemetry-sink', 'influx', '--influx-url', vm.url,
      '--influx-org', 'acme', '--influx-bucket', 'iot', '-o', 'json'], {env: {IOTCTL_INFLUX_TOKEN: TOKEN}})
    const error = expectJsonError(r, 6, 'E_INFLUX_REFUSED')
    expect(error.message).toMatch(/^Flux query: InfluxDB at http:\/\/127\.0\.0\.1:\d+\/? answered 4\d\d/)
    expect(r.stdout + r.stderr).not.toContain(TOKEN)
  })

  it('a context stores the sink and endpoint: config view masks the token, telemetry query goes to InfluxDB', async () => {
    const {cli: ctx} = await boundCli(undefined)
    const set = await ctx(['config', 'set-context', 'tsdb', '--telemetry-sink', 'influx', '--influx-url', vm.url, '--influx-token', TOKEN,
      '--influx-org', 'acme', '--influx-bucket', 'iot', '--use', '-o', 'json'])
    expect(set.code, describeRun(set)).toBe(0)
    const view = await ctx(['config', 'view', '-o', 'json'])
    expect(view.json().result.contexts).toEqual([{name: 'tsdb', current: true, telemetry_sink: 'influx', influx_url: expect.stringContaining('127.0.0.1'), influx_token: '***'}])
    expect(view.stdout + view.stderr).not.toContain(TOKEN)
    // No flags: the context's sink (influx only) decides where the query goes; VictoriaMetrics has no Flux.
    const r = await ctx(['telemetry', 'query', '--device', 'i1', '--metric', 't', '--since', '1h', '-o', 'json'])
    expect(expectJsonError(r, 6, 'E_INFLUX_REFUSED').message).toMatch(/^Flux query: /)
    expect(expectJsonError(await ctx(['config', 'set-context', 'x', '--telemetry-sink', 'kafka', '-o', 'json']), 4, 'E_TELEMETRY_SINK')).toBeTruthy()
  })

  it('serve --telemetry-sink postgres,influx stores a QoS 1 message in both before its PUBACK', async () => {
    const env: NodeJS.ProcessEnv = {...process.env, ...USER_ENV, CI: 'true', IOTCTL_CA_PASSPHRASE: PASSPHRASE, IOTCTL_DATABASE_URL: world.db.url, IOTCTL_INFLUX_TOKEN: TOKEN}
    for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
    const child = spawn(process.execPath, [BIN, ...serveArgs(vm.url), '--telemetry-sink', 'postgres,influx'], {env, stdio: ['ignore', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => (stdout += d))
    child.stderr!.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    const ts = Date.now() - 60_000
    try {
      await expect.poll(() => stderr.includes('[serve] ready'), {timeout: 30_000}).toBe(true)
      const result = JSON.parse(stdout).result as {broker: {devicePort: number}; ingest: {sinks: string[]}}
      expect(result.ingest.sinks).toEqual(['postgres', 'influx'])
      const device = await connectWith(`mqtts://127.0.0.1:${result.broker.devicePort}`, world.certs.get('i1')!, world.trust, 'i1')
      await device.publishAsync('devices/i1/telemetry', JSON.stringify({ts, seq: 1, metrics: {t: 20.5}}), {qos: 1})
      const {rows} = await world.db.pool.query("SELECT value FROM telemetry WHERE device_id = 'i1'")
      expect(rows).toEqual([{value: 20.5}])
      expect((await vm.exportSeries('{__name__="telemetry_t"}')).map((s) => [s.metric, s.values, s.timestamps]))
        .toEqual([[{__name__: 'telemetry_t', device: 'i1', type: 'thermostat'}, [20.5], [ts]]])
      await device.endAsync()
    } finally {
      child.kill('SIGTERM')
    }
    expect(await exited, `${stdout}\n${stderr}`).toBe(0)
    expect(describeRun({code: 0, stdout, stderr, json: () => JSON.parse(stdout)})).not.toContain(TOKEN)
  }, 60_000)
})
