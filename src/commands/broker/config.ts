import {BaseCommand} from '../../lib/cli/base-command.js'
import {Args, Flags} from '../../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../../lib/cli/pki-flags.js'
import {resolveCaDir} from '../../lib/config/index.js'
import {invalidInput} from '../../lib/core/errors.js'
import {writeMosquittoConfig} from '../../lib/broker/mosquitto-config.js'

export default class BrokerConfig extends BaseCommand<typeof BrokerConfig> {
  static override description = `Write a configuration for an external broker that enforces iotctl's rules (today: Mosquitto 2)

TLS 1.3, client certificates required (CN = identity = client id), CRLs, the device topic contract as pattern
ACLs on the device listener, a service listener that trusts only the service CA, packet limit, persistence.`
  static override examples = ['<%= config.bin %> broker config mosquitto --out /etc/mosquitto/iotctl && mosquitto -c /etc/mosquitto/iotctl/mosquitto.conf']
  static override args = {broker: Args.string({description: 'broker kind', required: true, options: ['mosquitto']})}
  static override flags = {
    ...pkiFlags,
    out: Flags.string({description: 'output directory', required: true}),
    bind: Flags.string({description: 'address to listen on', default: '127.0.0.1'}),
    'mqtt-port': Flags.integer({description: 'device listener port', default: 8883, min: 1, max: 65_535}),
    'service-port': Flags.integer({description: 'service listener port', default: 8884, min: 1, max: 65_535}),
    'max-packet-size': Flags.integer({description: 'largest MQTT packet accepted, in bytes', default: 65_536, min: 128}),
    user: Flags.string({description: 'user Mosquitto drops root privileges to (default: mosquitto)'}),
  }

  async run(): Promise<void> {
    if (this.flags['mqtt-port'] === this.flags['service-port']) {
      throw invalidInput('E_PORTS', '--mqtt-port and --service-port must differ', {hint: 'the defaults are 8883 and 8884'})
    }
    const caDir = await resolveCaDir({caDir: this.flags['ca-dir'], context: this.flags.context})
    const files = await writeMosquittoConfig({
      caDir, passphrase: await caPassphrase(this.flags['passphrase-file'], {caDir}), outDir: this.flags.out, host: this.flags.bind,
      devicePort: this.flags['mqtt-port'], servicePort: this.flags['service-port'], maxPacketBytes: this.flags['max-packet-size'], user: this.flags.user,
    })
    await this.render({files}, {rows: (r) => (r as {files: string[]}).files.map((path) => ({path})), name: (f) => `file/${f.path}`,
      columns: [{header: 'WRITTEN', get: (f) => f.path}]})
  }
}
