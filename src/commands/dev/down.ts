import {BaseCommand} from '../../lib/cli/base-command.js'
import {notice} from '../../lib/cli/progress.js'
import {devDown} from '../../lib/stack/index.js'

export default class DevDown extends BaseCommand<typeof DevDown> {
  static override description = 'Stop the dev stack cleanly; its data stays for the next `dev up`'
  static override examples = ['<%= config.bin %> dev down']

  async run(): Promise<void> {
    const result = await devDown()
    if (!this.machineOutput) notice(result.stopped ? 'dev stack stopped' : 'no dev stack was running')
    await this.render(result, {rows: (r) => [r as typeof result], name: () => 'stack/dev',
      columns: [{header: 'STOPPED', get: (r) => r.stopped}, {header: 'PID', get: (r) => r.pid}]})
  }
}
