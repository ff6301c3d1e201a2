import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {deviceView} from '../../lib/cli/views/devices.js'
import {invalidInput} from '../../lib/core/errors.js'
import {assertLabels, parseKeyValues} from '../../lib/core/key-value.js'
import {firmwareKey} from '../../lib/registry/firmware-key.js'
import {assertDeviceType, assertOwner, assertStatus, updateDevice, type DevicePatch} from '../../lib/registry/index.js'

export default class DevicesUpdate extends BaseCommand<typeof DevicesUpdate> {
  static override description = 'Change a device: type, owner, firmware, status, labels, metadata'
  static override examples = [
    '<%= config.bin %> devices update dev-12345 --label tier=prod --remove-label legacy --firmware 2.5.0',
    '<%= config.bin %> devices update dev-12345 --status offline --expected-version 3',
  ]
  static override args = {id: Args.string({description: 'device id', required: true})}
  static override flags = {
    type: Flags.string({description: 'new device type'}),
    owner: Flags.string({description: 'new owner user id; "" clears it'}),
    firmware: Flags.string({description: 'installed firmware version (semver)'}),
    status: Flags.string({description: 'active or offline (deprovision has its own command)', options: ['active', 'offline']}),
    label: Flags.string({description: 'set label key=value (repeatable)', multiple: true, default: []}),
    'remove-label': Flags.string({description: 'remove a label key (repeatable)', multiple: true, default: []}),
    meta: Flags.string({description: 'set metadata key=value (repeatable)', multiple: true, default: []}),
    'remove-meta': Flags.string({description: 'remove a metadata key (repeatable)', multiple: true, default: []}),
    'expected-version': Flags.integer({description: 'fail with exit 5 unless the device is at this row_version'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const patch: DevicePatch = {
      device_type: f.type === undefined ? undefined : assertDeviceType(f.type),
      owner_user_id: f.owner === undefined ? undefined : assertOwner(f.owner),
      firmware_version: f.firmware,
      firmware_key: f.firmware === undefined ? undefined : firmwareKey(f.firmware),
      status: f.status === undefined ? undefined : (assertStatus(f.status, ['active', 'offline']) as 'active' | 'offline'),
      setLabels: assertLabels(parseKeyValues(f.label, '--label')),
      removeLabels: f['remove-label'],
      setMetadata: parseKeyValues(f.meta, '--meta'),
      removeMetadata: f['remove-meta'],
      expectedVersion: f['expected-version'],
    }
    const changes = Object.entries(patch).filter(([k, v]) => k !== 'expectedVersion' && v !== undefined &&
      !(Array.isArray(v) && v.length === 0) && !(typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0))
    if (changes.length === 0) {
      throw invalidInput('E_NOTHING_TO_UPDATE', 'no change given', {hint: 'pass at least one of --type, --owner, --firmware, --status, --label, --remove-label, --meta, --remove-meta'})
    }
    await this.render(await updateDevice(await this.ctx.database(), this.args.id, patch), deviceView)
  }
}
