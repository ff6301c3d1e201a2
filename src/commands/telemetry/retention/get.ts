import {BaseCommand} from '../../../lib/cli/base-command.js'
import {retentionView} from '../../../lib/cli/views/telemetry.js'
import {getRetention} from '../../../lib/telemetry/retention.js'

export default class TelemetryRetentionGet extends BaseCommand<typeof TelemetryRetentionGet> {
  static override description = `Show how long each telemetry tier is kept, its partitions, and how many are past retention

The running ingest service drops expired partitions (whole partitions only; rows are never deleted).`
  static override examples = ['<%= config.bin %> telemetry retention get', '<%= config.bin %> telemetry retention get -o json']

  async run(): Promise<void> {
    await this.render(await getRetention(await this.ctx.database()), retentionView)
  }
}
