import {Args} from '../../lib/cli/oclif.js'
import {deprovisionDevice, getDevice} from '../../lib/registry/index.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {deviceView} from '../../lib/cli/views/devices.js'
import {confirmOrRefuse} from '../../lib/cli/prompt.js'

export default class DevicesDeprovision extends BaseCommand<typeof DevicesDeprovision> {
  static override description = 'Deprovision a device: it may no longer connect; the row is kept for audit'
  static override examples = ['<%= config.bin %> devices deprovision dev-12345 --yes']
  static override args = {id: Args.string({description: 'device id', required: true})}

  async run(): Promise<void> {
    assertDeviceId(this.args.id) // exit 4 before any database work
    const db = await this.ctx.database()
    await getDevice(db, this.args.id) // unknown id → exit 3 before asking anything
    await confirmOrRefuse(`Deprovision device ${this.args.id}?`, {yes: this.flags.yes})
    await this.render(await deprovisionDevice(db, this.args.id), deviceView)
  }
}
