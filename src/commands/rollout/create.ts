import {BaseCommand} from '../../lib/cli/base-command.js'
import {parseDuration} from '../../lib/cli/duration.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {rolloutView} from '../../lib/cli/views/rollout.js'
import {createRollout, parsePercent, parseRate, parseStages, ROLLOUT_DEFAULTS} from '../../lib/rollout/index.js'

export default class RolloutCreate extends BaseCommand<typeof RolloutCreate> {
  static override description = `Create a staged OTA rollout (pending until \`rollout start\`, or --start)

Targets: devices of the firmware's type matching --selector whose firmware is below the version (or unknown),
fixed when it starts. Stages are cumulative percentages; the first (the canary) is chosen by a stable hash of
rollout and device id, or is exactly --canary-selector's devices. Each stage is dispatched (at --rate), then
soaks for --soak; it advances when the failure rate stays under --max-failure-rate and at least --min-coverage
of its devices answered. Failed + timed-out among decided targets at the threshold (after --min-decided)
aborts at once; with --rollback updated devices go back to their previous version. --health adds checks on
the updated devices' telemetry and presence during the soak; a breach counts as that device failing.`
  static override examples = [
    '<%= config.bin %> rollout create fw-250 --firmware thermostat@2.5.0 --selector site=berlin --stages 1,10,100 --soak 24h --max-failure-rate 5% --rollback',
    "<%= config.bin %> rollout create fw-251 --firmware thermostat@2.5.1 --health 'temperature<80,status=online' --rate 100/min --start",
  ]

  static override args = {name: Args.string({description: 'rollout name', required: true})}
  static override flags = {
    firmware: Flags.string({description: 'TYPE@VERSION, uploaded with `firmware upload`', required: true}),
    selector: Flags.string({description: 'label selector over the firmware type\'s devices'}),
    'canary-selector': Flags.string({description: 'the devices of the first stage (else a stable hash picks them)'}),
    stages: Flags.string({description: 'cumulative percentages per stage', default: ROLLOUT_DEFAULTS.stages}),
    soak: Flags.string({description: 'time each stage soaks before the next', default: ROLLOUT_DEFAULTS.soak}),
    'max-failure-rate': Flags.string({description: 'abort when failed + timed-out reach this share of decided targets', default: ROLLOUT_DEFAULTS.maxFailureRate}),
    'min-decided': Flags.integer({description: 'decided targets needed before the failure rate can abort', default: ROLLOUT_DEFAULTS.minDecided}),
    'min-coverage': Flags.string({description: 'share of a stage\'s devices that must have answered before it advances', default: ROLLOUT_DEFAULTS.minCoverage}),
    rate: Flags.string({description: 'dispatches per minute (100/min, 5/s) or unlimited', default: ROLLOUT_DEFAULTS.rate}),
    'step-timeout': Flags.string({description: 'a device silent this long is timed-out (or unreached when offline)', default: ROLLOUT_DEFAULTS.stepTimeout}),
    health: Flags.string({description: "checks during the soak, e.g. 'temperature<80,status=online'"}),
    rollback: Flags.boolean({description: 'on abort, send updated devices back to their previous version'}),
    start: Flags.boolean({description: 'start it at once'}),
  }

  async run(): Promise<void> {
    const f = this.flags
    const spec = {
      name: this.args.name, firmware: f.firmware, selector: f.selector, canarySelector: f['canary-selector'], stages: parseStages(f.stages),
      soakMs: parseDuration(f.soak, '--soak'), maxFailureRate: parsePercent(f['max-failure-rate'], '--max-failure-rate'), minDecided: f['min-decided'],
      minCoverage: parsePercent(f['min-coverage'], '--min-coverage'), ratePerMinute: parseRate(f.rate), stepTimeoutMs: parseDuration(f['step-timeout'], '--step-timeout'),
      health: f.health, rollback: f.rollback,
    }
    await this.render(await createRollout(await this.ctx.database(), spec, {start: f.start}), rolloutView)
  }
}
