import {Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {devicePageView} from '../../lib/cli/views/devices.js'
import {notice} from '../../lib/cli/progress.js'
import {assertStatus, compileListQuery, listDevices, MAX_LIST_LIMIT} from '../../lib/registry/index.js'

export default class DevicesList extends BaseCommand<typeof DevicesList> {
  static override description = `List devices, filtered by a selector, one page at a time

Selectors follow Kubernetes label selectors over device labels, plus the fields type, status and firmware:
  site=berlin,tier!=test,env in (prod,stage),!legacy,type=thermostat,firmware<2.5.0
Pages are keyset-paginated: pass the printed cursor to --after for the next page.`
  static override examples = [
    "<%= config.bin %> devices list --selector 'site=berlin,type=thermostat' --limit 100",
    "<%= config.bin %> devices list --firmware '<2.5.0' -o json",
    '<%= config.bin %> devices list --after ZGV2LTAwMDk5 --limit 100',
  ]
  static override flags = {
    selector: Flags.string({char: 'l', description: 'label/field selector, e.g. site=berlin,tier!=test'}),
    status: Flags.string({description: 'only devices with this status', options: ['active', 'offline', 'deprovisioned']}),
    type: Flags.string({description: 'only devices of this type'}),
    firmware: Flags.string({description: "firmware semver range, e.g. '<2.5.0' or '^2.4'"}),
    limit: Flags.integer({description: `page size (1-${MAX_LIST_LIMIT})`, default: 100}),
    after: Flags.string({description: 'cursor from the previous page (its `next`)'}),
  }

  async run(): Promise<void> {
    const query = compileListQuery({
      selector: this.flags.selector,
      status: this.flags.status === undefined ? undefined : assertStatus(this.flags.status),
      type: this.flags.type,
      firmware: this.flags.firmware,
      limit: this.flags.limit,
      after: this.flags.after,
    })
    const page = await listDevices(await this.ctx.database(), query)
    await this.render(page, devicePageView)
    if (!this.machineOutput && page.next) notice(`more devices: --after ${page.next}`)
    if (!this.machineOutput && page.items.length === 0) notice('no devices match')
  }
}
