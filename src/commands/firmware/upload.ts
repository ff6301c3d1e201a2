import {BaseCommand} from '../../lib/cli/base-command.js'
import {firmwareDirFlags, firmwareDirs} from '../../lib/cli/firmware-flags.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {firmwareView} from '../../lib/cli/views/rollout.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {FileArtifactStore, uploadFirmware} from '../../lib/firmware/index.js'

export default class FirmwareUpload extends BaseCommand<typeof FirmwareUpload> {
  static override description = `Upload a firmware image: hash it, store it, sign its manifest, record it

The manifest (device type, version, version code, SHA-256, size, key id) is signed with the fleet's key.
The same version twice is exit 5; a version not above the newest of its device type is exit 4 unless
--allow-downgrade.`
  static override examples = ['<%= config.bin %> firmware upload ./build/fw-2.5.0.bin --version 2.5.0 --device-type thermostat']
  static override args = {file: Args.string({description: 'the firmware image', required: true})}
  static override flags = {
    ...pkiFlags,
    ...firmwareDirFlags,
    version: Flags.string({description: 'semantic version of this image', required: true}),
    'device-type': Flags.string({description: 'device type it is built for', required: true}),
    'min-version': Flags.string({description: 'devices must run at least this version to install it'}),
    notes: Flags.string({description: 'release notes (recorded, not signed)'}),
    'allow-downgrade': Flags.boolean({description: 'accept a version not above the newest recorded one'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const caDir = await resolveCaDir({caDir: f['ca-dir'], context: f.context})
    const passphrase = await caPassphrase(f['passphrase-file'], {caDir})
    const dirs = firmwareDirs(f)
    const record = await uploadFirmware(await this.ctx.database(), {
      file: this.args.file, version: f.version, deviceType: f['device-type'], minVersion: f['min-version'], notes: f.notes,
      allowDowngrade: f['allow-downgrade'], keysDir: dirs.keysDir, passphrase, store: new FileArtifactStore(dirs.artifactDir),
    })
    await this.render(record, firmwareView)
  }
}
