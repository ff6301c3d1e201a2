import {Args} from '../../lib/cli/oclif.js'
import {getDevice} from '../../lib/registry/index.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {deviceView} from '../../lib/cli/views/devices.js'

export default class DevicesGet extends BaseCommand<typeof DevicesGet> {
  static override description = 'Show one device'
  static override examples = ['<%= config.bin %> devices get dev-12345 -o yaml']
  static override args = {id: Args.string({description: 'device id', required: true})}

  async run(): Promise<void> {
    assertDeviceId(this.args.id) // exit 4 before any database work
    await this.render(await getDevice(await this.ctx.database(), this.args.id), deviceView)
  }
}
