import {BaseCommand} from '../../lib/cli/base-command.js'
import {Flags} from '../../lib/cli/oclif.js'
import {certificatesView} from '../../lib/cli/views/certs.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {listCertificates} from '../../lib/pki/index.js'

export default class CertsList extends BaseCommand<typeof CertsList> {
  static override description = 'List certificates, soonest expiry first'
  static override examples = ['<%= config.bin %> certs list --expiring-within 30d', '<%= config.bin %> certs list --device dev-12345 -o json']
  static override flags = {
    device: Flags.string({description: "only this device's certificates"}),
    'expiring-within': Flags.string({description: 'only active certificates that expire within this duration, e.g. 30d'}),
    status: Flags.string({description: 'only active or revoked', options: ['active', 'revoked']}),
    limit: Flags.integer({description: 'at most this many', default: 1000, min: 1, max: 100_000}),
  }

  async run(): Promise<void> {
    const within = this.flags['expiring-within']
    const records = await listCertificates(await this.ctx.database(), {
      deviceId: this.flags.device,
      expiringWithinMs: within === undefined ? undefined : parseDuration(within, '--expiring-within'),
      status: this.flags.status as 'active' | 'revoked' | undefined,
      limit: this.flags.limit,
    })
    await this.render(records, certificatesView)
  }
}
