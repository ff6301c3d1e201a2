import {BaseCommand} from '../../lib/cli/base-command.js'
import {devStatus, type DevStatus} from '../../lib/stack/index.js'

export default class DevStatusCommand extends BaseCommand<typeof DevStatusCommand> {
  static override description = 'Show whether the dev stack runs and whether its database answers (exit 3 when not running)'
  static override examples = ['<%= config.bin %> dev status', '<%= config.bin %> dev status -o json']

  async run(): Promise<void> {
    const status = await devStatus()
    await this.render(status, {
      rows: (r) => [r as DevStatus],
      name: () => 'stack/dev',
      columns: [
        {header: 'RUNNING', get: (s) => s.running},
        {header: 'PID', get: (s) => s.pid},
        {header: 'DATABASE', get: (s) => s.database?.url},
        {header: 'REACHABLE', get: (s) => s.database?.reachable},
        {header: 'POSTGRES', get: (s) => s.database?.version},
        {header: 'MQTT', get: (s) => s.broker?.mqtt_url},
        {header: 'STARTED', get: (s) => s.startedAt},
      ],
    })
    if (status.database && !status.database.reachable) this.addWarning(`the database does not answer: ${status.database.error}`)
  }
}
