import {Flags} from '../lib/cli/oclif.js'
import {BaseCommand} from '../lib/cli/base-command.js'
import {manifestFlags, manifestSources} from '../lib/cli/manifest-flags.js'
import {changeLines, changeView, planText} from '../lib/cli/views/manifests.js'
import {deleteManifests} from '../lib/manifest/index.js'

export default class Delete extends BaseCommand<typeof Delete> {
  static override description = `Delete the objects the manifests name, in one transaction

Devices are deprovisioned (kept for audit, certificates revoked), never erased. Objects that do not
exist are reported as "not found" and are not an error, so a delete can be repeated.`
  static override examples = ['<%= config.bin %> delete -f manifests/examples/desired-state.yaml', '<%= config.bin %> delete -f fleet/ -R --dry-run']
  static override flags = {
    ...manifestFlags,
    'dry-run': Flags.boolean({description: 'show what would be deleted; delete nothing'}),
  }

  async run(): Promise<void> {
    const result = await deleteManifests(() => this.ctx.database(), {...manifestSources(this.flags), dryRun: this.flags['dry-run']})
    if (!this.machineOutput && result.summary.deleted > 0) process.stderr.write(planText(result, 'delete'))
    if (this.format === 'table') process.stdout.write(changeLines(result))
    else await this.render(result, changeView)
  }
}
