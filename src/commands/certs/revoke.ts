import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {certificatesView} from '../../lib/cli/views/certs.js'
import {usageError} from '../../lib/core/errors.js'
import {assertReason, REVOCATION_REASONS, revokeCertificates} from '../../lib/pki/index.js'

export default class CertsRevoke extends BaseCommand<typeof CertsRevoke> {
  static override description = 'Revoke a certificate by serial, or all of a device\'s; publish with `iotctl certs crl`'
  static override examples = ['<%= config.bin %> certs revoke 5f0c…e1 --reason keyCompromise', '<%= config.bin %> certs revoke --device dev-12345']
  static override args = {serial: Args.string({description: 'certificate serial (hex, colons allowed)'})}
  static override flags = {
    device: Flags.string({description: 'revoke every active certificate of this device'}),
    reason: Flags.string({description: 'RFC 5280 reason', options: [...REVOCATION_REASONS], default: 'unspecified'}),
  }

  async run(): Promise<void> {
    if ((this.args.serial === undefined) === (this.flags.device === undefined)) {
      throw usageError('E_USAGE', 'name a SERIAL or --device ID (exactly one)', {hint: 'iotctl certs revoke --device dev-12345'})
    }
    const revoked = await revokeCertificates(await this.ctx.database(), {serial: this.args.serial, deviceId: this.flags.device}, assertReason(this.flags.reason))
    await this.render(revoked, certificatesView)
    if (!this.machineOutput) process.stderr.write('revoked; run `iotctl certs crl` to publish the CRLs\n')
  }
}
