import {BaseCommand} from '../../lib/cli/base-command.js'
import {firmwareDirFlags, firmwareDirs} from '../../lib/cli/firmware-flags.js'
import {Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {keyView} from '../../lib/cli/views/rollout.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {initSigningKeys, SIGNING_ALGORITHMS, type SigningAlgorithm} from '../../lib/firmware/index.js'

export default class KeysInit extends BaseCommand<typeof KeysInit> {
  static override description = `Create the fleet's firmware signing key (encrypted with the CA passphrase, like the CA keys)

Devices trust its public key (KEYS_DIR/firmware-signing.pub): every firmware manifest and OTA assignment is
signed with it. \`iotctl dev up\` creates one on first start.`
  static override examples = ['<%= config.bin %> keys init', '<%= config.bin %> keys init --algorithm ed25519 --keys-dir ./keys']
  static override flags = {
    ...pkiFlags,
    'keys-dir': firmwareDirFlags['keys-dir'],
    algorithm: Flags.string({description: 'signature algorithm', options: [...SIGNING_ALGORITHMS], default: 'ecdsa-p256'}),
    force: Flags.boolean({description: 'replace an existing key (devices must then trust the new public key)'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const caDir = await resolveCaDir({caDir: f['ca-dir'], context: f.context})
    const passphrase = await caPassphrase(f['passphrase-file'], {caDir})
    const info = await initSigningKeys({dir: firmwareDirs(f).keysDir, algorithm: f.algorithm as SigningAlgorithm, passphrase, force: f.force})
    await this.render(info, keyView)
  }
}
