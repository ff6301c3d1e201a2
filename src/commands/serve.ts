import {BaseCommand} from '../lib/cli/base-command.js'
import {Flags} from '../lib/cli/oclif.js'
import {caPassphrase, pkiFlags} from '../lib/cli/pki-flags.js'
import {firmwareDirFlags, firmwareDirs} from '../lib/cli/firmware-flags.js'
import {notice} from '../lib/cli/progress.js'
import {telemetrySinkFlags} from '../lib/cli/telemetry-sink-flags.js'
import {resolveCaDir} from '../lib/config/index.js'
import {invalidInput} from '../lib/core/errors.js'
import {readIdentityDir} from '../lib/mqtt/identity.js'
import {parseComponents, SERVE_COMPONENTS, startServices, type RunningServices} from '../lib/stack/index.js'

export default class Serve extends BaseCommand<typeof Serve> {
  static override description = `Run iotctl's long-lived services against external infrastructure, until SIGINT/SIGTERM

Components: ${SERVE_COMPONENTS.join(', ')}.
  broker   the embedded MQTT broker (aedes, mutual TLS, the topic contract) on --mqtt-port/--service-port;
           the other components then run in its publish path: a device's PUBACK follows the commit.
  ingest   telemetry and status into PostgreSQL with rollups, and/or InfluxDB (--telemetry-sink influx or
           postgres,influx); a QoS 1 message is acknowledged once every sink stored it. A sink that refuses
           for good (bad token, unknown bucket) stops the services with exit 6.
  shadow   device shadows: update/get answers, deltas published (retained) after each change and on connect.
  controller  the OTA rollout controller (one leader by PostgreSQL advisory lock; others stand by) and the
           HTTPS firmware artifact server (--artifact-port; signed, expiring URLs; Range requests).
Without broker, ingest and shadow share one persistent QoS 1 session on --broker-url (Mosquitto, EMQX,
HiveMQ) and acknowledge each message only when it is done; --shared spreads the load over several workers
($share/iotctl-ingest/..., $share/iotctl-shadow/...), each with its own identity (--identity DIR).
A stop (SIGTERM) stores and acknowledges everything taken; a crash loses nothing the broker was told is stored.`
  static override examples = [
    '<%= config.bin %> certs issue --operator ingest-1 --out ./ingest-1',
    '<%= config.bin %> serve --components ingest --broker-url mqtts://mqtt.example.com:8884 --identity ./ingest-1 --database-url postgres://…',
    '<%= config.bin %> serve --components broker,ingest --ca-dir ./ca --passphrase-file ./ca.pass --database-url postgres://…',
    'IOTCTL_INFLUX_TOKEN=… <%= config.bin %> serve --telemetry-sink postgres,influx --influx-url http://influx:8086 --influx-org acme --influx-bucket iot …',
  ]

  static override flags = {
    ...pkiFlags,
    ...firmwareDirFlags,
    'artifact-port': Flags.integer({description: 'controller: HTTPS port of the firmware artifact server', default: 8443, min: 0, max: 65_535}),
    'artifact-url': Flags.string({description: 'controller: base URL devices download from, if not https://BIND:PORT (a load balancer)'}),
    ...telemetrySinkFlags,
    components: Flags.string({description: `comma-separated: ${SERVE_COMPONENTS.join(', ')}`, default: 'broker,ingest,shadow', env: 'IOTCTL_COMPONENTS'}),
    identity: Flags.string({description: 'service identity directory from `certs issue --operator NAME --out DIR` (for mqtts:// brokers)', env: 'IOTCTL_IDENTITY'}),
    'client-id': Flags.string({description: 'MQTT client id of the services\' session (default: the identity\'s name)'}),
    shared: Flags.boolean({description: 'subscribe with a shared subscription ($share/iotctl-ingest/…) to share load with other workers'}),
    'mqtt-version': Flags.integer({description: 'MQTT protocol version of the ingest\'s connection', min: 4, max: 5, default: 4}),
    bind: Flags.string({description: 'address the broker listens on', default: '127.0.0.1'}),
    'mqtt-port': Flags.integer({description: 'broker: device listener port', default: 8883, min: 0, max: 65_535}),
    'service-port': Flags.integer({description: 'broker: service listener port', default: 8884, min: 0, max: 65_535}),
    'max-packet-size': Flags.integer({description: 'broker: largest MQTT packet accepted, in bytes', default: 65_536, min: 128, max: 268_435_455}),
  }

  async run(): Promise<void> {
    const components = parseComponents(this.flags.components)
    const f = this.flags
    if (components.includes('broker') && f['mqtt-port'] !== 0 && f['mqtt-port'] === f['service-port']) {
      throw invalidInput('E_PORTS', '--mqtt-port and --service-port must differ', {hint: 'the defaults are 8883 and 8884'})
    }
    const endpoints = await this.ctx.endpoints()
    const needsCa = components.includes('broker') || components.includes('controller')
    const caDir = needsCa ? await resolveCaDir({caDir: f['ca-dir'], context: f.context}) : undefined
    const passphrase = caDir ? await caPassphrase(f['passphrase-file'], {caDir}) : undefined
    const sinks = components.includes('ingest') ? await this.ctx.sinkSelection(f) : undefined
    const services = await startServices({
      components,
      sinks,
      database: () => this.ctx.database(),
      log: (service, line) => notice(`[${service}] ${line}`),
      broker: caDir && components.includes('broker') ? {caDir, passphrase: passphrase!, host: f.bind, devicePort: f['mqtt-port'],
        servicePort: f['service-port'], maxPacketBytes: f['max-packet-size']} : undefined,
      ingest: {brokerUrl: endpoints.brokerUrl ?? '', tls: (f.identity ?? endpoints.identityDir) ? await readIdentityDir((f.identity ?? endpoints.identityDir)!) : undefined, clientId: f['client-id'],
        shared: f.shared, protocolVersion: f['mqtt-version'] === 5 ? 5 : 4},
      firmware: caDir && components.includes('controller') ? {caDir, passphrase: passphrase!, ...firmwareDirs(f), host: f.bind, artifactPort: f['artifact-port'], artifactUrl: f['artifact-url']} : undefined,
    })
    await this.render({status: 'running', pid: process.pid, components, broker: services.broker ?? null, ingest: services.ingest ? {...services.ingest, sinks: services.sinks} : null,
      shadow: services.shadow ?? null, controller: services.controller ?? null}, {
      rows: (r) => [r as {pid: number; components: string[]}],
      name: () => 'serve',
      columns: [{header: 'PID', get: (r) => r.pid}, {header: 'COMPONENTS', get: (r) => r.components.join(',')}],
    })
    notice('[serve] ready; SIGINT/SIGTERM stops it after storing what was taken')
    const failure = await untilSignal(services)
    if (failure) throw failure
  }
}

/** Run until a signal (resolves undefined) or a sink stopped for good (resolves its error, after stopping). */
async function untilSignal(services: RunningServices): Promise<Error | undefined> {
  return new Promise((resolve) => {
    let stopping = false
    const stop = (reason: string, error?: Error) => {
      if (stopping) return
      stopping = true
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
      notice(`[serve] ${reason}: stopping`)
      void services.stop().then(() => {
        notice('[serve] stopped')
        resolve(error)
      })
    }
    const onSignal = (signal: NodeJS.Signals) => stop(signal)
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    void services.failed.then((error) => stop('telemetry sink failed', error))
  })
}
