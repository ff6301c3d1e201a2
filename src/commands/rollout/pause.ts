import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args} from '../../lib/cli/oclif.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {commandRollout} from '../../lib/rollout/index.js'

export default class RolloutPause extends BaseCommand<typeof RolloutPause> {
  static override description = 'Pause a rollout: nothing more is dispatched; devices already updating finish'
  static override examples = ['<%= config.bin %> rollout pause fw-250']
  static override args = {name: Args.string({description: 'rollout name', required: true})}


  async run(): Promise<void> {
    await this.render(await commandRollout(await this.ctx.database(), this.args.name, 'pause'), rolloutView)
  }
}
