import {Flags} from '../lib/cli/oclif.js'
import {BaseCommand} from '../lib/cli/base-command.js'
import {manifestFlags, manifestSources} from '../lib/cli/manifest-flags.js'
import {ExitCode} from '../lib/core/errors.js'
import {diffManifests} from '../lib/manifest/index.js'

export default class Diff extends BaseCommand<typeof Diff> {
  static override description = `Show what \`apply\` would change: a unified diff of live state against the files

Exit 0: no changes; 1: changes (a CI gate); above 1: an error. Work the spec cannot show
(a certificate to issue, devices whose shadows lack the desired values) is listed as # lines.`
  static override examples = ['<%= config.bin %> diff -f manifests/examples/', '<%= config.bin %> diff -f fleet/ --prune --applyset fleet -o json']
  static override flags = {
    ...manifestFlags,
    prune: Flags.boolean({description: 'include what `apply --prune` would delete'}),
    applyset: Flags.string({description: 'the applyset (with --prune)'}),
  }

  async run(): Promise<void> {
    const result = await diffManifests(() => this.ctx.database(), {...manifestSources(this.flags), prune: this.flags.prune, applyset: this.flags.applyset})
    if (this.format === 'table') process.stdout.write(result.diff)
    else await this.render(result)
    if (result.changed) process.exitCode = ExitCode.diffFound
  }
}
