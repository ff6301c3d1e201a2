import {Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {ExitCode} from '../../lib/core/errors.js'
import {listDrift} from '../../lib/shadow/index.js'

export default class ShadowDrift extends BaseCommand<typeof ShadowDrift> {
  static override description = `Devices whose desired state has not been reached for longer than --older-than

Exit 1 when any device drifts, 0 when all converged: a CI gate ("diff found changes" in the exit-code table).`
  static override examples = ["<%= config.bin %> shadow drift --selector 'site=berlin' --older-than 1h"]
  static override flags = {
    selector: Flags.string({char: 'l', description: 'label selector'}),
    type: Flags.string({description: 'only devices of this type'}),
    'older-than': Flags.string({description: 'how long a desired value may stay unmet', default: '0s'}),
    limit: Flags.integer({description: 'devices to list at most', default: 1000, min: 1, max: 100_000}),
  }

  async run(): Promise<void> {
    const olderThanSeconds = parseDuration(this.flags['older-than'], '--older-than') / 1000
    const drift = await listDrift(await this.ctx.database(), {selector: this.flags.selector, type: this.flags.type, olderThanSeconds, limit: this.flags.limit})
    await this.render(drift, {rows: (r) => r as typeof drift, name: (d) => `shadow/${d.device_id}`,
      columns: [{header: 'DEVICE', get: (d) => d.device_id}, {header: 'PENDING_SINCE', get: (d) => d.pending_since}, {header: 'VERSION', get: (d) => d.version},
        {header: 'DELTA', get: (d) => JSON.stringify(d.delta)}]})
    if (drift.length > 0) process.exitCode = ExitCode.diffFound
  }
}
