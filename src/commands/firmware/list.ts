import {BaseCommand} from '../../lib/cli/base-command.js'
import {Flags} from '../../lib/cli/oclif.js'
import {firmwareView} from '../../lib/cli/views/rollout.js'
import {listFirmware} from '../../lib/firmware/index.js'

export default class FirmwareList extends BaseCommand<typeof FirmwareList> {
  static override description = 'List uploaded firmware (per device type, in upload order)'
  static override flags = {'device-type': Flags.string({description: 'only this device type'})}

  async run(): Promise<void> {
    await this.render(await listFirmware(await this.ctx.database(), {deviceType: this.flags['device-type']}), firmwareView)
  }
}
