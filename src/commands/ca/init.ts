import {BaseCommand} from '../../lib/cli/base-command.js'
import {Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {caView} from '../../lib/cli/views/certs.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {initCa, KEY_TYPES, type KeyType} from '../../lib/pki/index.js'

export default class CaInit extends BaseCommand<typeof CaInit> {
  static override description = `Create the CA hierarchy: a root, a device-issuing and a service-issuing intermediate, and the broker's server certificate

Private keys are PKCS#8 encrypted with the passphrase (IOTCTL_CA_PASSPHRASE, --passphrase-file or a prompt), mode 0600.`
  static override examples = ['IOTCTL_CA_PASSPHRASE=… <%= config.bin %> ca init --san broker.example.com']
  static override flags = {
    ...pkiFlags,
    'key-type': Flags.string({description: 'key type of the CAs', options: [...KEY_TYPES], default: 'ec-p256'}),
    san: Flags.string({description: "extra DNS name or IP for the broker's server certificate (repeatable)", multiple: true, default: []}),
    force: Flags.boolean({description: 'replace an existing CA (the old directory is kept aside)'}),
  }

  async run(): Promise<void> {
    const dir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const passphrase = await caPassphrase(this.flags['passphrase-file'], {confirm: true})
    const info = await initCa({dir, keyType: this.flags['key-type'] as KeyType, passphrase, sans: this.flags.san, force: this.flags.force})
    await this.render(info, caView)
    if (!this.machineOutput) process.stderr.write(`CA written to ${dir}\n`)
  }
}
