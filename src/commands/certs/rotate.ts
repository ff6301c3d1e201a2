import {resolve} from 'node:path'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {certificateColumns} from '../../lib/cli/views/certs.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {DEFAULT_DAYS, rotateDeviceCertificate, writeIssued} from '../../lib/pki/index.js'

export default class CertsRotate extends BaseCommand<typeof CertsRotate> {
  static override description = `Issue a new certificate for a device while the old one stays valid

The old certificate is revoked (superseded) once the device connects with the new one, or when --grace ends
(applied by \`certs crl\` and the services).`
  static override examples = ['<%= config.bin %> certs rotate dev-12345 --grace 24h --out ./dev-12345']
  static override args = {id: Args.string({description: 'device id', required: true})}
  static override flags = {
    ...pkiFlags,
    grace: Flags.string({description: 'how long the old certificate stays valid at most', default: '24h'}),
    out: Flags.string({description: 'directory for the new device.key, device.crt, chain.pem (default ./ID)'}),
    days: Flags.integer({description: 'lifetime of the new certificate in days', default: DEFAULT_DAYS}),
  }

  async run(): Promise<void> {
    const graceMs = parseDuration(this.flags.grace, '--grace')
    const caDir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const passphrase = await caPassphrase(this.flags['passphrase-file'], {caDir})
    const result = await rotateDeviceCertificate(await this.ctx.database(), {caDir, passphrase, deviceId: this.args.id, graceMs, days: this.flags.days})
    const out = this.flags.out ?? (this.machineOutput ? undefined : resolve(this.args.id))
    const files = out ? await writeIssued(out, result.issued) : []
    if (this.machineOutput) {
      await this.render({...result.issued, superseding: result.superseding, files})
    } else {
      await this.render(result.issued.record, {rows: (r) => [r as typeof result.issued.record], name: (c) => `certificate/${c.serial}`, columns: certificateColumns})
      process.stderr.write(`wrote ${files.join(', ')}; superseding ${result.superseding.join(', ') || 'nothing'}\n`)
    }
  }
}
