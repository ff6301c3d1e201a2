import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {Flags} from '../../lib/cli/oclif.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {usageError} from '../../lib/core/errors.js'
import {tailTelemetry} from '../../lib/telemetry/tail.js'

export default class TelemetryTail extends BaseCommand<typeof TelemetryTail> {
  static override description = `Print telemetry live as it arrives; --since first replays recent history, then continues without gap or duplicate

A line per message (time, device, metrics) at a terminal; JSON lines when stdout is not a terminal or with -o json.
Connects to the broker's service listener with the dev stack's CLI identity, or the context's (--identity).`
  static override examples = [
    '<%= config.bin %> telemetry tail --device dev-12345',
    "<%= config.bin %> telemetry tail --selector 'site=berlin' --metric temperature --since 10m",
    '<%= config.bin %> telemetry tail -o json | jq .metrics.temperature',
  ]
  static override flags = {
    device: Flags.string({char: 'd', description: 'one device'}),
    selector: Flags.string({char: 'l', description: 'label selector'}),
    type: Flags.string({description: 'only devices of this type'}),
    metric: Flags.string({char: 'm', description: 'only this metric'}),
    since: Flags.string({description: 'replay this much history first (e.g. 10m)'}),
    'max-messages': Flags.integer({description: 'stop after this many messages', min: 1}),
  }

  async run(): Promise<void> {
    const f = this.flags
    if (f.device && (f.selector || f.type)) throw usageError('E_USAGE', '--device and --selector/--type exclude each other', {hint: 'use one of them'})
    if (f.device) assertDeviceId(f.device)
    const sinceMs = f.since === undefined ? undefined : parseDuration(f.since, '--since')
    const lines = this.machineOutput || !process.stdout.isTTY
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    await tailTelemetry({
      db: await this.ctx.database(), broker: await this.ctx.broker(), deviceId: f.device, selector: f.selector, type: f.type, metric: f.metric, sinceMs,
      signal: controller.signal, maxMessages: f['max-messages'],
      onMessage: (m) => process.stdout.write(lines ? `${JSON.stringify(m)}\n`
        : `${m.ts}  ${m.device_id}  ${Object.entries(m.metrics).map(([k, v]) => `${k}=${v}`).join(' ')}\n`),
    })
  }
}
