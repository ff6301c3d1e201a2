import {BaseCommand} from '../../lib/cli/base-command.js'
import {firmwareDirFlags, firmwareDirs} from '../../lib/cli/firmware-flags.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {verifyView} from '../../lib/cli/views/rollout.js'
import {invalidInput} from '../../lib/core/errors.js'
import {parseFirmwareRef, verifyFirmwareFile} from '../../lib/firmware/index.js'

export default class FirmwareVerify extends BaseCommand<typeof FirmwareVerify> {
  static override description = `Check a file against its recorded firmware manifest and the manifest's signature

Finds the record by the file's SHA-256 (or --firmware TYPE@VERSION), verifies the manifest signature with the
fleet's public key, and compares SHA-256 and size. A mismatch is exit 4; an unknown file exit 3.`
  static override examples = ['<%= config.bin %> firmware verify ./fw-2.5.0.bin', '<%= config.bin %> firmware verify ./download.bin --firmware thermostat@2.5.0']
  static override args = {file: Args.string({description: 'the file to check', required: true})}
  static override flags = {
    'keys-dir': firmwareDirFlags['keys-dir'],
    firmware: Flags.string({description: 'compare with this TYPE@VERSION instead of looking the file up by hash'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const ref = f.firmware === undefined ? undefined : parseFirmwareRef(f.firmware)
    if (f.firmware !== undefined && !ref) throw invalidInput('E_FIRMWARE_REF', `--firmware ${JSON.stringify(f.firmware)} is not TYPE@VERSION`, {hint: 'e.g. --firmware thermostat@2.5.0'})
    await this.render(await verifyFirmwareFile(await this.ctx.database(), {file: this.args.file, keysDir: firmwareDirs(f).keysDir, ref}), verifyView)
  }
}
