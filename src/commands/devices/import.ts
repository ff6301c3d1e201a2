import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {startProgress} from '../../lib/cli/progress.js'
import {readInput} from '../../lib/cli/input.js'
import {detectFormat, importDevices, ON_CONFLICT, parseImport, type OnConflict} from '../../lib/registry/index.js'

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
  }

  async run(): Promise<void> {
    const format = detectFormat(this.args.file, this.flags.format)
    const rows = await parseImport(await readInput(this.args.file), format)
    const progress = await startProgress(`importing ${rows.length} devices`, {quiet: this.machineOutput})
    try {
      const result = await importDevices(await this.ctx.database(), rows, this.flags['on-conflict'] as OnConflict)
      progress.succeed(`imported ${result.inserted}, updated ${result.updated}, skipped ${result.skipped}`)
      await this.render(result, {rows: (r) => [r as typeof result], name: () => 'import', columns: [
        {header: 'ROWS', get: (r) => r.rows}, {header: 'INSERTED', get: (r) => r.inserted},
        {header: 'UPDATED', get: (r) => r.updated}, {header: 'SKIPPED', get: (r) => r.skipped}]})
    } catch (error) {
      progress.fail('import failed; nothing was imported')
      throw error
    }
  }
}
