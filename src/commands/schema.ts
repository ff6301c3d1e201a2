import {BaseCommand} from '../lib/cli/base-command.js'
import {manifestJsonSchema} from '../lib/manifest/index.js'

export default class Schema extends BaseCommand<typeof Schema> {
  static override description = `Print the JSON Schema (draft-07) of iotctl manifests, for editors

The same schema validates manifests inside iotctl. With yaml-language-server (VS Code's YAML extension),
start a manifest with: # yaml-language-server: $schema=./iotctl.schema.json`
  static override examples = ['<%= config.bin %> schema > iotctl.schema.json']

  async run(): Promise<void> {
    const schema = await manifestJsonSchema()
    // The schema file itself on stdout (what editors load); -o json wraps it in the usual envelope.
    if (this.format === 'table') process.stdout.write(JSON.stringify(schema, null, 2) + '\n')
    else await this.render(schema)
  }
}
