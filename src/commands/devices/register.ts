import {Args, Flags} from '../../lib/cli/oclif.js'
import {registerDevice, toDeviceInput} from '../../lib/registry/index.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {deviceView} from '../../lib/cli/views/devices.js'
import {parseKeyValues} from '../../lib/core/key-value.js'

export default class DevicesRegister extends BaseCommand<typeof DevicesRegister> {
  static override description = 'Register a device in the registry'
  static override examples = [
    '<%= config.bin %> devices register dev-12345 --type thermostat --owner 42 --label site=berlin --firmware 2.4.0',
  ]
  static override args = {id: Args.string({description: 'device id (^[a-z0-9][a-z0-9_-]{0,63}$)', required: true})}
  static override flags = {
    type: Flags.string({description: 'device type, e.g. thermostat', required: true}),
    owner: Flags.string({description: 'owner user id (integer)'}),
    label: Flags.string({description: 'label key=value (repeatable)', multiple: true, default: []}),
    meta: Flags.string({description: 'metadata key=value (repeatable)', multiple: true, default: []}),
    firmware: Flags.string({description: 'installed firmware version (semver)'}),
  }

  async run(): Promise<void> {
    const input = toDeviceInput({
      device_id: this.args.id,
      device_type: this.flags.type,
      owner_user_id: this.flags.owner,
      firmware_version: this.flags.firmware,
      labels: parseKeyValues(this.flags.label, '--label'),
      metadata: parseKeyValues(this.flags.meta, '--meta'),
    })
    const device = await registerDevice(await this.ctx.database(), input)
    await this.render(device, deviceView)
  }
}
