import {Flags} from '../lib/cli/oclif.js'
import {BaseCommand} from '../lib/cli/base-command.js'
import {lazyFirmwareTools, lazyIssuer, manifestFlags, manifestSources} from '../lib/cli/manifest-flags.js'
import {firmwareDirFlags} from '../lib/cli/firmware-flags.js'
import {pkiFlags} from '../lib/cli/pki-flags.js'
import {changeLines, changeView, planText} from '../lib/cli/views/manifests.js'
import {applyManifests} from '../lib/manifest/index.js'

export default class Apply extends BaseCommand<typeof Apply> {
  static override description = `Apply manifests: create, update and prune devices, groups, desired state, firmware and rollouts in one transaction

Every document is loaded and validated first (errors name file:line:column, exit 4, nothing changed);
the plan is printed to stderr, then executed all or nothing. Applying the same files again changes nothing.
--prune deletes what an earlier apply of the same --applyset created and the files no longer contain
(devices are deprovisioned, not erased).`
  static override examples = [
    '<%= config.bin %> apply -f manifests/examples/',
    '<%= config.bin %> apply -f fleet/ -R --dry-run',
    'cat fleet.yaml | <%= config.bin %> apply -f - --prune --applyset fleet -o json',
  ]
  static override flags = {
    ...manifestFlags,
    'dry-run': Flags.boolean({description: 'show what would change; write nothing'}),
    prune: Flags.boolean({description: 'delete objects of --applyset that the files no longer contain'}),
    applyset: Flags.string({description: 'name of the set of objects these files manage (needed by --prune)'}),
    ...pkiFlags,
    ...firmwareDirFlags,
  }

  async run(): Promise<void> {
    const f = this.flags
    const result = await applyManifests(() => this.ctx.database(), {
      ...manifestSources(f), dryRun: f['dry-run'], prune: f.prune, applyset: f.applyset, issuer: lazyIssuer(f), firmware: lazyFirmwareTools(f),
      onPlan: (plan) => {
        if (!this.machineOutput) process.stderr.write(planText(plan))
      },
    })
    for (const note of result.notes) if (!this.machineOutput) process.stderr.write(`${note}\n`)
    if (this.format === 'table') process.stdout.write(changeLines(result))
    else await this.render(result, changeView)
  }
}
