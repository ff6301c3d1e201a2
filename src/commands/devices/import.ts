import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {startProgress} from '../../lib/cli/progress.js'
import {readInput} from '../../lib/cli/input.js'
import {join} from 'node:path'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {usageError} from '../../lib/core/errors.js'
import {DEFAULT_DAYS, deviceIssuer, writeIssued, type IssuedCertificate} from '../../lib/pki/index.js'
import {detectFormat, importChunks, importDevices, ON_CONFLICT, type OnConflict} from '../../lib/registry/index.js'

export default class DevicesImport extends BaseCommand<typeof DevicesImport> {
  static override description = `Import devices from CSV or JSON Lines: all rows or none

Columns / keys: device_id, device_type, owner_user_id, firmware_version, status, labels, metadata.
In CSV, labels (and metadata) are k=v;k=v; metadata may also be a JSON object.`
  static override examples = [
    '<%= config.bin %> devices import fleet.csv',
    'cat fleet.jsonl | <%= config.bin %> devices import - --format jsonl --on-conflict skip',
  ]
  static override args = {file: Args.string({description: 'CSV or JSON Lines file, or - for stdin', required: true})}
  static override flags = {
    format: Flags.string({description: 'file format (default: from the file name)', options: ['csv', 'jsonl']}),
    'on-conflict': Flags.string({description: 'when a device_id is already registered', options: [...ON_CONFLICT], default: 'fail'}),
    'issue-certs': Flags.boolean({description: 'also issue a certificate for every imported device, in the same transaction'}),
    out: Flags.string({description: 'with --issue-certs: write DIR/<device_id>/device.{key,crt} and chain.pem'}),
    days: Flags.integer({description: 'with --issue-certs: certificate lifetime in days', default: DEFAULT_DAYS}),
    ...pkiFlags,
  }

  async run(): Promise<void> {
    if (this.flags['issue-certs'] && !this.flags.out) {
      throw usageError('E_USAGE', '--issue-certs needs --out DIR for the keys and certificates', {hint: 'iotctl devices import fleet.csv --issue-certs --out ./certs'})
    }
    const format = detectFormat(this.args.file, this.flags.format)
    const text = await readInput(this.args.file)
    const caDir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const issue = this.flags['issue-certs']
      ? await deviceIssuer({caDir, passphrase: await caPassphrase(this.flags['passphrase-file'], {caDir}), days: this.flags.days})
      : undefined
    const progress = await startProgress(`importing devices from ${this.args.file}`, {quiet: this.machineOutput})
    try {
      let issued: IssuedCertificate[] = []
      const result = await importDevices(await this.ctx.database(), importChunks(text, format), this.flags['on-conflict'] as OnConflict,
        issue && (async (client, ids) => void (issued = await issue(client, ids))))
      // Keys reach the disk only after the transaction committed.
      for (const cert of issued) await writeIssued(join(this.flags.out!, cert.record.subject_name), cert)
      progress.succeed(`imported ${result.inserted}, updated ${result.updated}, skipped ${result.skipped}` +
        (issue ? `; issued ${issued.length} certificates into ${this.flags.out}` : ''))
      await this.render(result, {rows: (r) => [r as typeof result], name: () => 'import', columns: [
        {header: 'ROWS', get: (r) => r.rows}, {header: 'INSERTED', get: (r) => r.inserted},
        {header: 'UPDATED', get: (r) => r.updated}, {header: 'SKIPPED', get: (r) => r.skipped}]})
    } catch (error) {
      progress.fail('import failed; nothing was imported')
      throw error
    }
  }
}
