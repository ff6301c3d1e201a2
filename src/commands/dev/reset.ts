import {BaseCommand} from '../../lib/cli/base-command.js'
import {confirmOrRefuse} from '../../lib/cli/prompt.js'
import {devPaths, devReset} from '../../lib/stack/index.js'

export default class DevReset extends BaseCommand<typeof DevReset> {
  static override description = 'Stop the dev stack and delete all of its data (database, logs); needs --yes without a terminal'
  static override examples = ['<%= config.bin %> dev reset --yes']

  async run(): Promise<void> {
    await confirmOrRefuse(`Delete every device and all data under ${devPaths().root}?`, {yes: this.flags.yes})
    const result = await devReset()
    await this.render(result, {rows: (r) => [r as typeof result], name: () => 'stack/dev', columns: [{header: 'REMOVED', get: (r) => r.removed}]})
  }
}
