import {BaseCommand} from '../../lib/cli/base-command.js'
import {viewConfig, type ConfigView} from '../../lib/config/index.js'

type Row = ConfigView['contexts'][number]

export default class ConfigViewCommand extends BaseCommand<typeof ConfigViewCommand> {
  static override description = 'Show the contexts in $IOTCTL_HOME/config.yaml (passwords masked) and what this invocation would use'
  static override examples = ['<%= config.bin %> config view -o yaml']

  async run(): Promise<void> {
    const flags = {databaseUrl: this.flags['database-url'], brokerUrl: this.flags['broker-url'], context: this.flags.context}
    const view = await viewConfig(flags)
    await this.render(view, {
      rows: (r) => (r as ConfigView).contexts,
      name: (c: Row) => `context/${c.name}`,
      columns: [
        {header: 'CURRENT', get: (c: Row) => (c.current ? '*' : '')},
        {header: 'NAME', get: (c: Row) => c.name},
        {header: 'DATABASE', get: (c: Row) => c.database_url},
        {header: 'BROKER', get: (c: Row) => c.broker_url},
      ],
    })
    if (!this.machineOutput) {
      process.stderr.write(`effective database: ${view.effective.database_url ?? '(none)'} (from ${view.effective.database_source})\n`)
    }
  }
}
