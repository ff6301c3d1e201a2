import {Args} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {shadowView} from '../../lib/cli/views/shadow.js'
import {assertDeviceId} from '../../lib/core/device-id.js'
import {getShadow} from '../../lib/shadow/index.js'

export default class ShadowGet extends BaseCommand<typeof ShadowGet> {
  static override description = `Show a device's shadow: desired, reported and delta per key (-o json: the whole document with metadata and version)`
  static override examples = ['<%= config.bin %> shadow get dev-12345', '<%= config.bin %> shadow get dev-12345 -o json']
  static override args = {id: Args.string({description: 'device id', required: true})}

  async run(): Promise<void> {
    assertDeviceId(this.args.id)
    const doc = {device_id: this.args.id, ...(await getShadow(await this.ctx.database(), this.args.id))}
    // -o name: the shadow is one resource, not one per key row of the table.
    if (this.format === 'name') return this.render(doc, {rows: (r) => [r as typeof doc], name: (d) => `shadow/${d.device_id}`, columns: []})
    await this.render(doc, shadowView)
  }
}
