import {Args, Flags} from '@oclif/core'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {setContext} from '../../lib/config/index.js'

export default class ConfigSetContext extends BaseCommand<typeof ConfigSetContext> {
  static override description = 'Create or change a context (the file is written with mode 0600)'
  static override examples = ['<%= config.bin %> config set-context prod --database-url postgres://iot@db:5432/iot --broker-url mqtts://mqtt:8883 --use']
  static override args = {name: Args.string({description: 'context name', required: true})}
  static override flags = {use: Flags.boolean({description: 'also make it the current context'})}

  async run(): Promise<void> {
    // The global --database-url / --broker-url flags name what to store; env variables do not leak in.
    const argv = this.argv.join(' ')
    const entry = {
      'database-url': /--database-url/.test(argv) ? this.flags['database-url'] : undefined,
      'broker-url': /--broker-url/.test(argv) ? this.flags['broker-url'] : undefined,
    }
    const result = await setContext(this.args.name, entry, {use: this.flags.use})
    await this.render(result, {rows: (r) => [r as typeof result], name: (r) => `context/${r.name}`,
      columns: [{header: 'NAME', get: (r) => r.name}, {header: 'CREATED', get: (r) => r.created}]})
  }
}
