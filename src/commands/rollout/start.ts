import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args} from '../../lib/cli/oclif.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {commandRollout} from '../../lib/rollout/index.js'

export default class RolloutStart extends BaseCommand<typeof RolloutStart> {
  static override description = 'Start a pending rollout: fix its targets and begin the first stage (the controller in `dev up` / `serve` drives it)'
  static override examples = ['<%= config.bin %> rollout start fw-250']
  static override args = {name: Args.string({description: 'rollout name', required: true})}


  async run(): Promise<void> {
    await this.render(await commandRollout(await this.ctx.database(), this.args.name, 'start'), rolloutView)
  }
}
