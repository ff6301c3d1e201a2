import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {commandRollout} from '../../lib/rollout/index.js'

export default class RolloutAbort extends BaseCommand<typeof RolloutAbort> {
  static override description = 'Abort a rollout: nothing more is dispatched; with --rollback updated devices go back to their previous version'
  static override examples = ['<%= config.bin %> rollout abort fw-250']
  static override args = {name: Args.string({description: 'rollout name', required: true})}
  static override flags = {
    rollback: Flags.boolean({description: 'send devices that updated back to their previous version'}),
    reason: Flags.string({description: 'recorded with the abort'}),
  }

  async run(): Promise<void> {
    await this.render(await commandRollout(await this.ctx.database(), this.args.name, 'abort', {rollback: this.flags.rollback, reason: this.flags.reason}), rolloutView)
  }
}
