import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {assertService, devLogs, DEV_SERVICES} from '../../lib/stack/index.js'

export default class DevLogs extends BaseCommand<typeof DevLogs> {
  static override description = `Print the dev stack's logs: one service's, or all of them (each line prefixed with its service); -f follows

Each service writes its own file under $IOTCTL_HOME/dev/logs/: stack (start, stop, summary lines), postgres
(the server's log), broker (listeners, refused connections) and ingest (rejected payloads, write failures).`
  static override examples = ['<%= config.bin %> dev logs broker -f', '<%= config.bin %> dev logs stack | grep summary:']
  static override args = {service: Args.string({description: `one of: ${DEV_SERVICES.join(', ')}`})}
  static override flags = {follow: Flags.boolean({char: 'f', description: 'keep printing new lines until Ctrl-C'})}

  async run(): Promise<void> {
    const abort = new AbortController()
    process.once('SIGINT', () => abort.abort())
    await devLogs({
      service: this.args.service === undefined ? undefined : assertService(this.args.service),
      follow: this.flags.follow,
      write: (chunk) => process.stdout.write(chunk),
      signal: abort.signal,
    })
  }
}
