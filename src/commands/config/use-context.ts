import {Args} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {useContext} from '../../lib/config/index.js'

export default class ConfigUseContext extends BaseCommand<typeof ConfigUseContext> {
  static override description = 'Make NAME the current context'
  static override examples = ['<%= config.bin %> config use-context prod']
  static override args = {name: Args.string({description: 'context name', required: true})}

  async run(): Promise<void> {
    const result = await useContext(this.args.name)
    await this.render(result, {rows: (r) => [r as typeof result], name: (r) => `context/${r.current_context}`,
      columns: [{header: 'CURRENT_CONTEXT', get: (r) => r.current_context}]})
  }
}
