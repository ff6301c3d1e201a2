import {Args} from '../lib/cli/oclif.js'
import {BaseCommand} from '../lib/cli/base-command.js'
import {exportObjects, toYamlStream, type ManifestDocument} from '../lib/manifest/index.js'

export default class Get extends BaseCommand<typeof Get> {
  static override description = `Export live objects as manifests (device, devicegroup, desiredstate, firmware, rollout)

-o yaml prints a multi-document stream that \`apply -f -\` takes back unchanged.`
  static override examples = ['<%= config.bin %> get device dev-1 -o yaml', '<%= config.bin %> get devicegroups', '<%= config.bin %> get desiredstate -o yaml > desired.yaml']
  static override args = {
    kind: Args.string({description: 'kind: device, devicegroup, desiredstate, firmware, rollout (plural and short forms work)', required: true}),
    name: Args.string({description: 'object name (default: all of the kind)'}),
  }

  async run(): Promise<void> {
    const docs = await exportObjects(await this.ctx.database(), this.args.kind, this.args.name)
    const result = this.args.name === undefined ? docs : docs[0]
    if (this.format === 'yaml') {
      process.stdout.write(await toYamlStream(docs))
      return
    }
    await this.render(result, {rows: () => docs, name: (d: ManifestDocument) => `${d.kind.toLowerCase()}/${d.metadata.name}`, columns: [
      {header: 'KIND', get: (d) => d.kind}, {header: 'NAME', get: (d) => d.metadata.name}, {header: 'LABELS', get: (d) => d.metadata.labels},
      {header: 'SPEC', get: (d) => JSON.stringify(d.spec)}]})
  }
}
