import {Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {notice} from '../../lib/cli/progress.js'
import {queryView, renderPlot} from '../../lib/cli/views/telemetry.js'
import {AGGREGATES} from '../../lib/telemetry/query-plan.js'
import {telemetrySinkFlags} from '../../lib/cli/telemetry-sink-flags.js'
import {checkSinkSelection, queryTelemetryInflux} from '../../lib/telemetry/index.js'
import {queryTelemetry} from '../../lib/telemetry/query.js'

export default class TelemetryQuery extends BaseCommand<typeof TelemetryQuery> {
  static override description = `Read a metric's history: raw points, or buckets from the matching rollup

With --every the coarsest rollup that divides it answers (1m, 1h, 1d; 5m from 1m, 6h from 1h); anything
finer than a minute or not a multiple of one comes from raw points. Buckets are aligned to UTC and the
range widens to whole buckets. avg is Σsum/Σcount over the points, also across a --selector fleet.
With a context (or --telemetry-sink) that stores telemetry in InfluxDB only, the equivalent Flux query runs
there instead (one --device; buckets from the rollups \`telemetry setup influx\` creates; InfluxDB 2.x).`
  static override examples = [
    '<%= config.bin %> telemetry query --device dev-1 --metric temperature --since 24h',
    '<%= config.bin %> telemetry query --device dev-1 --metric temperature --since 7d --every 1h --plot',
    "<%= config.bin %> telemetry query --selector 'site=berlin' --metric temperature --since 7d --every 1h --agg avg -o csv",
    '<%= config.bin %> telemetry query --device dev-1 --metric humidity --since 2026-11-24T00:00:00Z --until 2026-11-25T00:00:00Z --every 5m',
  ]
  static override flags = {
    device: Flags.string({char: 'd', description: 'device id', exclusive: ['selector']}),
    selector: Flags.string({char: 'l', description: 'label/field selector: aggregate over every matching device', exclusive: ['device']}),
    metric: Flags.string({char: 'm', description: 'metric name', required: true}),
    since: Flags.string({description: 'start: a duration before now (24h, 7d) or an RFC 3339 time', required: true}),
    until: Flags.string({description: 'end (exclusive): a duration before now or an RFC 3339 time (default: now)'}),
    every: Flags.string({description: 'bucket width, at most 1d (1m, 5m, 1h, 6h, 1d); without it, raw points'}),
    agg: Flags.string({description: 'aggregate per bucket (with --every)', options: [...AGGREGATES], default: 'avg'}),
    plot: Flags.boolean({description: 'draw a line chart instead of the table (table output only)'}),
    ...telemetrySinkFlags,
  }

  async run(): Promise<void> {
    const f = this.flags
    const request = {device: f.device, selector: f.selector, metric: f.metric, since: f.since, until: f.until, every: f.every, agg: f.agg}
    // PostgreSQL answers whenever it stores telemetry; InfluxDB only when it is the one sink.
    const sinks = await this.ctx.sinkSelection(f)
    if (!sinks.kinds.includes('postgres')) checkSinkSelection(sinks)
    const {result, warnings} = sinks.kinds.includes('postgres')
      ? await queryTelemetry(() => this.ctx.database(), request)
      : await queryTelemetryInflux(sinks.influx!, request)
    for (const warning of warnings) this.addWarning(warning)
    if (f.plot && this.format === 'table') process.stdout.write(await renderPlot(result, process.stdout.columns ?? 80))
    else await this.render(result, queryView(result))
    if (!this.machineOutput && result.points.length === 0) notice(`no points between ${result.from} and ${result.until}`)
  }
}
