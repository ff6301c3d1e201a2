import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {readInput} from '../../lib/cli/input.js'
import {usageError} from '../../lib/core/errors.js'
import {desiredPatch, setDesired, setDesiredBySelector} from '../../lib/shadow/index.js'

export default class ShadowSet extends BaseCommand<typeof ShadowSet> {
  static override description = `Set desired state for a device, or for every device a selector matches (one transaction)

Values are typed: 72 is a number, true a boolean, [1,2] an array, cooling a string; a.b=1 nests; key=null deletes.
The shadow service publishes the delta to each device (retained), now if it is online, else when it connects.`
  static override examples = [
    '<%= config.bin %> shadow set dev-12345 target_temperature=72 mode=cooling',
    '<%= config.bin %> shadow set dev-12345 --file desired.json --expected-version 4',
    "<%= config.bin %> shadow set --selector 'site=berlin' schedule.night=18",
  ]
  static override strict = false
  static override args = {id: Args.string({description: 'device id (omit it with --selector), then key=value pairs'})}
  static override flags = {
    file: Flags.string({char: 'f', description: 'JSON file with the desired object ("-" for stdin)'}),
    'expected-version': Flags.integer({description: 'fail with exit 5 unless the shadow is at this version', min: 0}),
    selector: Flags.string({char: 'l', description: 'label selector: set it on every matching device'}),
    type: Flags.string({description: 'only devices of this type (with --selector)'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const bulk = f.selector !== undefined || f.type !== undefined
    const [first, ...rest] = this.positionals
    const id = bulk ? undefined : first
    const assignments = bulk ? this.positionals : rest
    if (!bulk && (!id || id.includes('='))) throw usageError('E_USAGE', 'name a device id, or --selector for a group', {hint: 'iotctl shadow set dev-12345 mode=cooling'})
    if (bulk && f['expected-version'] !== undefined) throw usageError('E_USAGE', '--expected-version applies to one device, not a --selector', {hint: 'drop --expected-version'})
    const patch = desiredPatch({assignments, fileText: f.file === undefined ? undefined : await readInput(f.file), fileName: f.file})
    const db = await this.ctx.database()
    if (bulk) {
      const result = await setDesiredBySelector(db, {selector: f.selector, type: f.type}, patch)
      await this.render(result, {rows: (r) => [r as typeof result], name: () => 'shadow/selection',
        columns: [{header: 'MATCHED', get: (r) => r.matched}, {header: 'CHANGED', get: (r) => r.changed}, {header: 'UNCHANGED', get: (r) => r.unchanged}]})
      return
    }
    const result = await setDesired(db, id!, patch, f['expected-version'])
    await this.render(result, {rows: (r) => [r as typeof result], name: (r) => `shadow/${r.device_id}`,
      columns: [{header: 'DEVICE', get: (r) => r.device_id}, {header: 'VERSION', get: (r) => r.version}, {header: 'DELTA', get: (r) => (r.delta ? JSON.stringify(r.delta) : '(in sync)')}]})
  }
}
