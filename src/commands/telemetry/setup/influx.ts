import {BaseCommand} from '../../../lib/cli/base-command.js'
import {influxFlags} from '../../../lib/cli/telemetry-sink-flags.js'
import {notice} from '../../../lib/cli/progress.js'
import {checkSinkSelection, setupInflux} from '../../../lib/telemetry/index.js'

export default class TelemetrySetupInflux extends BaseCommand<typeof TelemetrySetupInflux> {
  static override description = `Prepare InfluxDB 2.x for the influx telemetry sink, idempotently

Creates the bucket of raw points and BUCKET_1m, BUCKET_1h, BUCKET_1d with PostgreSQL's default retention
(7d, 30d, 365d, forever), and one Flux task per rollup that writes count, sum, min and max per metric
(tag stat) from the tier below. A second run changes nothing; a changed task text or retention is updated.
Needs a real InfluxDB 2.x (VictoriaMetrics and InfluxDB 3 serve no tasks API).`
  static override examples = ['IOTCTL_INFLUX_TOKEN=… <%= config.bin %> telemetry setup influx --influx-url http://influx:8086 --influx-org acme --influx-bucket iot']
  static override flags = {...influxFlags}

  async run(): Promise<void> {
    const influx = await this.ctx.influxSettings(this.flags)
    checkSinkSelection({kinds: ['influx'], influx: influx ?? {url: '', token: '', org: '', bucket: '', labels: []}})
    const result = await setupInflux(influx!)
    await this.render(result, {
      rows: (r) => (r as typeof result).actions,
      name: (a) => `${a.action}/${a.name}`,
      columns: [{header: 'ACTION', get: (a) => a.action}, {header: 'NAME', get: (a) => a.name}],
    })
    if (!this.machineOutput && result.actions.length === 0) notice('InfluxDB is already set up: nothing changed')
  }
}
