import {resolve} from 'node:path'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {BaseCommand} from '../../lib/cli/base-command.js'
import {setContext} from '../../lib/config/index.js'

export default class ConfigSetContext extends BaseCommand<typeof ConfigSetContext> {
  static override description = 'Create or change a context (the file is written with mode 0600)'
  static override examples = ['<%= config.bin %> config set-context prod --database-url postgres://iot@db:5432/iot --broker-url mqtts://mqtt:8883 --use']
  static override args = {name: Args.string({description: 'context name', required: true})}
  // These two shadow the global flags without their IOTCTL_* variables: only what is typed is stored.
  static override flags = {
    'database-url': Flags.string({description: 'PostgreSQL URL to store in the context'}),
    'broker-url': Flags.string({description: 'MQTT broker URL (the service listener) to store in the context'}),
    'ca-dir': Flags.string({description: 'CA directory to store in the context'}),
    identity: Flags.string({description: 'service identity directory (from `certs issue --operator NAME --out DIR`) for commands that speak MQTT'}),
    'telemetry-sink': Flags.string({description: 'where `serve` and `dev up` store telemetry: postgres, influx or postgres,influx'}),
    'influx-url': Flags.string({description: 'InfluxDB URL for the influx sink, `telemetry setup influx` and `telemetry query`'}),
    'influx-token': Flags.string({description: 'InfluxDB API token (stored in the 0600 config file, never printed)'}),
    'influx-org': Flags.string({description: 'InfluxDB organization'}),
    'influx-bucket': Flags.string({description: 'InfluxDB bucket of raw points'}),
    'influx-labels': Flags.string({description: 'device labels written as InfluxDB tags (comma-separated)'}),
    use: Flags.boolean({description: 'also make it the current context'}),
  }

  async run(): Promise<void> {
    const absolute = (p: string | undefined) => (p === undefined ? undefined : resolve(p))
    const entry = {'database-url': this.flags['database-url'], 'broker-url': this.flags['broker-url'], 'ca-dir': absolute(this.flags['ca-dir']),
      identity: absolute(this.flags.identity), 'telemetry-sink': this.flags['telemetry-sink'], 'influx-url': this.flags['influx-url'],
      'influx-token': this.flags['influx-token'], 'influx-org': this.flags['influx-org'], 'influx-bucket': this.flags['influx-bucket'],
      'influx-labels': this.flags['influx-labels']}
    const result = await setContext(this.args.name, entry, {use: this.flags.use})
    await this.render(result, {rows: (r) => [r as typeof result], name: (r) => `context/${r.name}`,
      columns: [{header: 'NAME', get: (r) => r.name}, {header: 'CREATED', get: (r) => r.created}]})
  }
}
