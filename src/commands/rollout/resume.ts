import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args} from '../../lib/cli/oclif.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {commandRollout} from '../../lib/rollout/index.js'

export default class RolloutResume extends BaseCommand<typeof RolloutResume> {
  static override description = 'Resume a paused rollout where it stopped'
  static override examples = ['<%= config.bin %> rollout resume fw-250']
  static override args = {name: Args.string({description: 'rollout name', required: true})}


  async run(): Promise<void> {
    await this.render(await commandRollout(await this.ctx.database(), this.args.name, 'resume'), rolloutView)
  }
}
