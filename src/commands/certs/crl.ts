import {BaseCommand} from '../../lib/cli/base-command.js'
import {Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {publishCrls} from '../../lib/pki/index.js'

export default class CertsCrl extends BaseCommand<typeof CertsCrl> {
  static override description = `Sign CRLs for the root and both intermediates (nextUpdate in 7 days, increasing CRL numbers)

Writes root.crl.pem, device-ca.crl.pem, service-ca.crl.pem and crl-chain.pem (all three concatenated: Mosquitto's
crlfile; Node's tls wants them as an array, one CRL per element) to
--out (default CA_DIR/crl). Rotated certificates whose grace period has ended are revoked first.`
  static override examples = ['<%= config.bin %> certs crl --out /etc/mosquitto/crl']
  static override flags = {...pkiFlags, out: Flags.string({description: 'output directory'})}

  async run(): Promise<void> {
    const caDir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const passphrase = await caPassphrase(this.flags['passphrase-file'], {caDir})
    const crls = await publishCrls(await this.ctx.database(), {caDir, passphrase, outDir: this.flags.out})
    await this.render(crls, {rows: (r) => r as typeof crls, name: (c) => `crl/${c.ca}`, columns: [
      {header: 'CA', get: (c) => c.ca}, {header: 'NUMBER', get: (c) => c.number}, {header: 'REVOKED', get: (c) => c.entries},
      {header: 'NEXT_UPDATE', get: (c) => c.next_update}, {header: 'PATH', get: (c) => c.path}]})
  }
}
