import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {watchShadow} from '../../lib/shadow/index.js'

export default class ShadowWatch extends BaseCommand<typeof ShadowWatch> {
  static override description = `Stream a device shadow: the current document, then every committed change, until Ctrl-C

One JSON line per version (-o json, or whenever stdout is not a terminal); a readable line at a terminal.`
  static override examples = ['<%= config.bin %> shadow watch dev-12345', '<%= config.bin %> shadow watch dev-12345 --max-events 2 | jq .version']
  static override args = {id: Args.string({description: 'device id', required: true})}
  static override flags = {'max-events': Flags.integer({description: 'stop after this many documents (the first is the current one)', min: 1})}

  async run(): Promise<void> {
    assertDeviceId(this.args.id)
    const lines = this.machineOutput || !process.stdout.isTTY
    const controller = new AbortController()
    const stop = () => controller.abort()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    await watchShadow(await this.ctx.database(), this.args.id, (doc) => {
      const {desired, reported, delta} = doc.state
      process.stdout.write(lines
        ? `${JSON.stringify({device_id: this.args.id, ...doc})}\n`
        : `${new Date((doc.timestamp || 0) * 1000).toISOString()}  v${doc.version}  desired=${JSON.stringify(desired)} reported=${JSON.stringify(reported)}${delta ? ` delta=${JSON.stringify(delta)}` : ' (in sync)'}\n`)
    }, {signal: controller.signal, maxEvents: this.flags['max-events']})
  }
}
