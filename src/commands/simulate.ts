import {join} from 'node:path'
import {BaseCommand} from '../lib/cli/base-command.js'
import {parseDuration} from '../lib/cli/duration.js'
import {Flags} from '../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../lib/cli/pki-flags.js'
import {notice} from '../lib/cli/progress.js'
import {iotctlHome, resolveCaDir} from '../lib/config/index.js'
import {assertDeviceType} from '../lib/registry/index.js'
import {invalidInput, notFound} from '../lib/core/errors.js'
import {DEFAULT_METRICS, parseMetrics, runSimulation} from '../lib/simulator/index.js'
import {runningStack} from '../lib/stack/index.js'

export default class Simulate extends BaseCommand<typeof Simulate> {
  static override description = `Run virtual devices that follow docs/PROTOCOL.md: mutual TLS, status and Will, telemetry, shadows, commands

Each device connects with its own certificate (issued at start), publishes status online (retained) with a Will,
then telemetry every --interval (spread evenly over the fleet), applies shadow deltas and reports them, and
acknowledges commands. Firmware assignments are checked against the trusted signing key (--firmware-key), downloaded
over HTTPS with resume, verified and installed into an A/B slot (--ota-failure-rate, --ota-hang-rate inject failures).
Disconnected devices reconnect with exponential backoff and full jitter (1 s base, 60 s
cap) and keep QoS 1 telemetry queued. Ends after --duration or on Ctrl-C with a summary (-o json for JSON).`
  static override examples = [
    '<%= config.bin %> simulate --count 200 --register --type thermostat --firmware 2.4.0 --interval 5s --duration 1m',
    '<%= config.bin %> simulate --count 50 --metrics temperature:18..26,pressure:990..1030 --anomaly-rate 0.01 -o json',
  ]

  static override flags = {
    ...pkiFlags,
    count: Flags.integer({char: 'n', description: 'number of devices', required: true, min: 1, max: 100_000}),
    prefix: Flags.string({description: 'device id prefix (ids are PREFIX0000, PREFIX0001, …)', default: 'sim-'}),
    type: Flags.string({description: 'device type (with --register)', default: 'sensor'}),
    firmware: Flags.string({description: 'firmware version the devices report (with --register)'}),
    register: Flags.boolean({description: 'register the devices first (existing ones are kept)'}),
    interval: Flags.string({description: 'telemetry interval per device', default: '30s'}),
    metrics: Flags.string({description: 'metrics as name:min..max, comma-separated (bounded random walks)', default: DEFAULT_METRICS}),
    'anomaly-rate': Flags.string({description: 'probability (0..1) that a reading is a spike', default: '0'}),
    qos: Flags.integer({description: 'telemetry QoS (0 or 1)', default: 1, min: 0, max: 1}),
    duration: Flags.string({description: 'run this long (e.g. 10m); default: until Ctrl-C'}),
    'ota-failure-rate': Flags.string({description: 'probability (0..1) that an installed image fails to boot 3 times (reverted, reported boot-failed)', default: '0'}),
    'ota-hang-rate': Flags.string({description: 'probability (0..1) that a device goes silent on a firmware assignment', default: '0'}),
    'firmware-key': Flags.string({description: 'firmware signing public key the devices trust (default: $IOTCTL_HOME/keys/firmware-signing.pub)', env: 'IOTCTL_FIRMWARE_KEY'}),
    'device-url': Flags.string({description: 'the broker\'s device listener (default: the running dev stack\'s)', env: 'IOTCTL_DEVICE_URL'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const intervalMs = parseDuration(f.interval, '--interval')
    if (intervalMs < 100) throw invalidInput('E_INTERVAL', '--interval must be at least 100ms', {hint: 'e.g. --interval 1s'})
    const durationMs = f.duration === undefined ? undefined : parseDuration(f.duration, '--duration')
    const anomalyRate = probability(f['anomaly-rate'], 'anomaly-rate')
    const otaFailureRate = probability(f['ota-failure-rate'], 'ota-failure-rate')
    const otaHangRate = probability(f['ota-hang-rate'], 'ota-hang-rate')
    const metrics = parseMetrics(f.metrics)
    const prefix = f.prefix
    if (!/^[a-z0-9][a-z0-9_-]{0,50}$/.test(prefix)) throw invalidInput('E_PREFIX', `invalid --prefix ${JSON.stringify(prefix)}`, {hint: 'lowercase letters, digits, "_" and "-", e.g. sim-'})
    const type = assertDeviceType(f.type)
    const stack = f['device-url'] ? undefined : await runningStack()
    const deviceUrl = f['device-url'] ?? (stack?.broker ? `mqtts://127.0.0.1:${stack.broker.devicePort}` : undefined)
    if (!deviceUrl) throw notFound('E_NO_BROKER', 'no broker to connect the devices to', {hint: 'start one with `iotctl dev up --detach`, or pass --device-url mqtts://HOST:8883'})
    const caDir = await resolveCaDir({caDir: f['ca-dir'], context: f.context})
    const passphrase = await caPassphrase(f['passphrase-file'], {caDir})
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const quiet = this.machineOutput
    if (!quiet) notice(`simulating ${f.count} devices against ${deviceUrl}${durationMs ? ` for ${f.duration}` : ' until Ctrl-C'}`)
    const summary = await runSimulation({
      db: await this.ctx.database(), caDir, passphrase, deviceUrl, count: f.count, prefix, type, firmware: f.firmware, register: f.register,
      intervalMs, metrics, anomalyRate, otaFailureRate, otaHangRate,
      firmwareKeyFile: f['firmware-key'] ?? join(iotctlHome(), 'keys', 'firmware-signing.pub'), qos: f.qos === 0 ? 0 : 1, durationMs, signal: controller.signal, log: (line) => notice(`[simulate] ${line}`),
      onProgress: (c, ms) => notice(`[simulate] ${Math.round(ms / 1000)}s: ${c.connected} connected, ${c.sent} sent, ${c.acknowledged} acknowledged, ${c.reconnects} reconnects, ${c.errors} errors`),
    })
    await this.render(summary, {rows: (r) => [r as typeof summary], name: () => `simulation/${prefix}`,
      columns: [{header: 'DEVICES', get: (s) => s.devices}, {header: 'SENT', get: (s) => s.sent}, {header: 'ACKNOWLEDGED', get: (s) => s.acknowledged},
        {header: 'RECONNECTS', get: (s) => s.reconnects}, {header: 'ERRORS', get: (s) => s.errors}, {header: 'DELTAS', get: (s) => s.deltas_applied},
        {header: 'OTA_INSTALLS', get: (s) => s.ota_installs}, {header: 'OTA_FAILED', get: (s) => s.ota_failures + s.ota_refusals},
        {header: 'SECONDS', get: (s) => s.duration_s}]})
  }
}

/** A flag that is a probability: a number from 0 to 1 (`0.3`), else invalid input (exit 4). */
function probability(value: string, flag: string): number {
  const p = value.trim() === '' ? NaN : Number(value)
  if (!(p >= 0 && p <= 1)) throw invalidInput(`E_${flag.toUpperCase().replaceAll('-', '_')}`, `--${flag} ${JSON.stringify(value)} is not a probability`, {hint: 'a number from 0 to 1, e.g. 0.01'})
  return p
}
