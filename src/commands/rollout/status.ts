import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {canAnimate} from '../../lib/cli/terminal.js'
import {rolloutStatusView, statusLines} from '../../lib/cli/views/rollout.js'
import {isFinal, rolloutStatus, type RolloutStatus} from '../../lib/rollout/index.js'

export default class RolloutStatusCommand extends BaseCommand<typeof RolloutStatusCommand> {
  static override description = `Show a rollout: stage, counts per state, failure rate against the threshold, soak time left, ETA

With --watch it follows the rollout until it finishes (or Ctrl-C): bars per stage redrawn on a terminal, one
JSON object per line with -o json (for scripts).`
  static override examples = ['<%= config.bin %> rollout status fw-250', '<%= config.bin %> rollout status fw-250 --watch -o json']
  static override args = {name: Args.string({description: 'rollout name', required: true})}
  static override flags = {
    watch: Flags.boolean({char: 'w', description: 'follow until the rollout finishes'}),
    interval: Flags.integer({description: 'seconds between updates with --watch', default: 1, min: 1}),
  }

  async run(): Promise<void> {
    const db = await this.ctx.database()
    const name = this.args.name
    if (!this.flags.watch) {
      const status = await rolloutStatus(db, name)
      if (!this.machineOutput) process.stderr.write(statusLines(status).join('\n') + '\n')
      return this.render(status, rolloutStatusView)
    }
    const stop = new AbortController()
    process.once('SIGINT', () => stop.abort())
    const live = canAnimate() && !this.machineOutput
    let drawn = 0
    for (;;) {
      const status: RolloutStatus = await rolloutStatus(db, name)
      if (this.machineOutput) {
        process.stdout.write(JSON.stringify(status) + '\n')
      } else {
        const lines = statusLines(status)
        // Redraw in place at a terminal (cursor up, clear to end); plain lines otherwise.
        if (live && drawn > 0) process.stderr.write(`\u001B[${drawn}A\u001B[0J`)
        process.stderr.write(lines.join('\n') + '\n')
        drawn = lines.length
      }
      if (isFinal(status.state) || stop.signal.aborted) return
      await new Promise((resolve) => setTimeout(resolve, this.flags.interval * 1000))
      if (stop.signal.aborted) return
    }
  }
}
