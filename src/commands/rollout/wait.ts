import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {notice} from '../../lib/cli/progress.js'
import {rolloutStatusView} from '../../lib/cli/views/rollout.js'
import {waitForRollout} from '../../lib/rollout/index.js'

export default class RolloutWait extends BaseCommand<typeof RolloutWait> {
  static override description = `Wait for a rollout to finish, for CI pipelines

Exit 0 when it completed, 7 when it was aborted (or rolled back), 8 when --timeout passed first.`
  static override examples = ['<%= config.bin %> rollout wait fw-250 --timeout 2h']
  static override args = {name: Args.string({description: 'rollout name', required: true})}
  static override flags = {timeout: Flags.string({description: 'give up after this long', default: '1h'})}

  async run(): Promise<void> {
    const timeoutMs = parseDuration(this.flags.timeout, '--timeout')
    let last = ''
    const status = await waitForRollout(await this.ctx.database(), this.args.name, {
      timeoutMs,
      onStatus: (s) => {
        const line = `${s.name}: ${s.state}, stage ${s.stage}/${s.stages.length}, ${s.counts.succeeded} succeeded, ${s.counts.failed + s.counts['timed-out']} failed`
        if (line !== last && !this.machineOutput) notice(line)
        last = line
      },
    })
    await this.render(status, rolloutStatusView)
  }
}
