import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {shadowHistory} from '../../lib/shadow/index.js'

export default class ShadowHistory extends BaseCommand<typeof ShadowHistory> {
  static override description = 'Every version of a device shadow, newest first: who changed what, and when'
  static override examples = ['<%= config.bin %> shadow history dev-12345 --limit 10']
  static override args = {id: Args.string({description: 'device id', required: true})}
  static override flags = {limit: Flags.integer({description: 'versions to show', default: 50, min: 1, max: 10_000})}

  async run(): Promise<void> {
    assertDeviceId(this.args.id)
    const entries = await shadowHistory(await this.ctx.database(), this.args.id, this.flags.limit)
    await this.render(entries, {rows: (r) => r as typeof entries, name: (e) => `shadow/${this.args.id}@${e.version}`,
      columns: [{header: 'VERSION', get: (e) => e.version}, {header: 'AT', get: (e) => e.at}, {header: 'BY', get: (e) => e.actor},
        {header: 'CHANGE', get: (e) => JSON.stringify((e.change as {state: unknown}).state)}]})
  }
}
