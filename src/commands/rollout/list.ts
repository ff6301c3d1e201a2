import {BaseCommand} from '../../lib/cli/base-command.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {listRollouts} from '../../lib/rollout/index.js'

export default class RolloutList extends BaseCommand<typeof RolloutList> {
  static override description = 'List rollouts, newest first'

  async run(): Promise<void> {
    await this.render(await listRollouts(await this.ctx.database()), rolloutView)
  }
}
