import {BaseCommand} from '../../lib/cli/base-command.js'
import {pkiFlags} from '../../lib/cli/pki-flags.js'
import {caView} from '../../lib/cli/views/certs.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {showCa} from '../../lib/pki/index.js'

export default class CaShow extends BaseCommand<typeof CaShow> {
  static override description = 'Show the CA hierarchy: subjects, SHA-256 fingerprints, expiry (no passphrase needed)'
  static override examples = ['<%= config.bin %> ca show -o json']
  static override flags = {'ca-dir': pkiFlags['ca-dir']}

  async run(): Promise<void> {
    const dir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    await this.render(await showCa(dir), caView)
  }
}
