import {Args} from '../../../lib/cli/oclif.js'
import {BaseCommand} from '../../../lib/cli/base-command.js'
import {retentionView} from '../../../lib/cli/views/telemetry.js'
import {parseRetentionAssignments, setRetention} from '../../../lib/telemetry/retention.js'

export default class TelemetryRetentionSet extends BaseCommand<typeof TelemetryRetentionSet> {
  static override description = `Set how long telemetry tiers are kept: raw points, 1-minute and 1-hour rollups

Defaults: raw=7d 1m=30d 1h=365d; the 1d rollup is kept forever. A tier may be "forever"; otherwise at
least 1d, since data goes by whole partitions (raw and 1m by day, 1h by month) once all of a partition
is older than its tier's retention. Tiers not named keep their setting.`
  static override examples = [
    '<%= config.bin %> telemetry retention set raw=7d 1m=30d 1h=365d',
    '<%= config.bin %> telemetry retention set raw=14d',
    '<%= config.bin %> telemetry retention set 1h=forever',
  ]
  static override strict = false
  static override args = {assignments: Args.string({description: 'TIER=DURATION pairs (tiers: raw, 1m, 1h; 1d=forever)'})}

  async run(): Promise<void> {
    const changes = parseRetentionAssignments(this.positionals)
    const {tiers, warnings} = await setRetention(await this.ctx.database(), changes)
    for (const warning of warnings) this.addWarning(warning)
    await this.render(tiers, retentionView)
  }
}
