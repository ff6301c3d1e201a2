import {BaseCommand} from '../../lib/cli/base-command.js'
import {devStatus, serviceRows} from '../../lib/stack/index.js'

type Row = ReturnType<typeof serviceRows>[number]

export default class DevStatusCommand extends BaseCommand<typeof DevStatusCommand> {
  static override description = `Show each service of the dev stack (postgres, broker, ingest): pid, ports and health

postgres is healthy when SELECT 1 answers, the broker when both TLS listeners complete a handshake, the
ingest when the stack process lives and its heartbeat is fresh. Exit 3 when no stack runs; an unhealthy
service is a warning (exit 0).`
  static override examples = ['<%= config.bin %> dev status', '<%= config.bin %> dev status -o json']

  async run(): Promise<void> {
    const status = await devStatus()
    for (const [name, service] of Object.entries(status.services)) {
      if (!service.healthy) this.addWarning(`${name} is unhealthy: ${service.error ?? 'no reason given'}`)
    }
    await this.render(status, {
      rows: () => serviceRows(status),
      name: (r: Row) => `service/${r.service}`,
      columns: [
        {header: 'SERVICE', get: (r: Row) => r.service},
        {header: 'PID', get: (r: Row) => r.pid},
        {header: 'PORTS', get: (r: Row) => r.ports},
        {header: 'HEALTH', get: (r: Row) => r.health},
        {header: 'DETAIL', get: (r: Row) => r.detail},
      ],
    })
  }
}
