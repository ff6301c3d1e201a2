import {invalidInput, usageError, type IotctlError} from '../core/errors.js'
import {commonName} from '../mqtt/identity.js'
import type {Database} from '../db/pool.js'
import {startBroker, type RunningBroker} from '../broker/server.js'
import type {TlsIdentity} from '../mqtt/client.js'
import {startServiceSubscriber} from '../mqtt/subscriber.js'
import {createShadowService, SHADOW_SHARE_GROUP, SHADOW_TOPICS, type ShadowPublisher} from '../shadow/index.js'
import {checkSinkSelection, createTelemetryService, INGEST_SHARE_GROUP, INGEST_TOPICS, openSinks, type SinkSelection, type TelemetryService} from '../telemetry/index.js'
import {deviceMessageRouter} from './router.js'
import {OTA_TOPICS, ROLLOUT_SHARE_GROUP, startFirmwareServices, type FirmwareServices} from './firmware-services.js'

export const SERVE_COMPONENTS = ['broker', 'ingest', 'shadow', 'controller'] as const
export type ServeComponent = (typeof SERVE_COMPONENTS)[number]

export function parseComponents(text: string): ServeComponent[] {
  const names = text.split(',').map((s) => s.trim()).filter(Boolean)
  const unknown = names.filter((n) => !(SERVE_COMPONENTS as readonly string[]).includes(n))
  if (names.length === 0 || unknown.length > 0) {
    throw usageError('E_COMPONENTS', `unknown component${unknown.length === 1 ? '' : 's'} ${unknown.map((u) => JSON.stringify(u)).join(', ') || '(none given)'}`, {
      hint: `choose from ${SERVE_COMPONENTS.join(', ')}, e.g. --components ingest`,
    })
  }
  return [...new Set(names)] as ServeComponent[]
}

export interface ServeOptions {
  components: ServeComponent[]
  /** Opened after the options are checked, so bad input never waits for a database. */
  database: () => Promise<Database>
  log: (service: string, line: string) => void
  /** For `broker`: the CA directory and key passphrase, listeners. */
  broker?: {caDir: string; passphrase: string; host: string; devicePort: number; servicePort: number; maxPacketBytes: number}
  /** For `ingest` and `shadow` without `broker`: the external broker and this worker's identity. */
  ingest?: {brokerUrl: string; tls?: TlsIdentity; clientId?: string; shared: boolean; protocolVersion: 4 | 5}
  /** For `controller`: the signing key and artifacts, and the HTTPS artifact server's listener. */
  firmware?: {caDir: string; passphrase: string; keysDir: string; artifactDir: string; host: string; artifactPort: number; artifactUrl?: string}
  /** For `ingest`: where telemetry is stored (default PostgreSQL alone). */
  sinks?: SinkSelection
}

export interface RunningServices {
  components: ServeComponent[]
  broker?: {devicePort: number; servicePort: number}
  ingest?: {mode: 'in-broker' | 'subscriber'; clientId?: string}
  shadow?: {mode: 'in-broker' | 'subscriber'; clientId?: string}
  controller?: {artifactPort: number; artifactUrl: string}
  telemetry?: TelemetryService
  /** Which sinks the ingest writes to. */
  sinks?: string[]
  /** Resolves when a sink refused for good (bad token, unknown bucket): the caller stops and exits 6. */
  failed: Promise<IotctlError>
  stop(): Promise<void>
}

/** Everything that can be wrong with the options, before any connection is made. */
export function checkServeOptions(options: Pick<ServeOptions, 'components' | 'broker' | 'ingest' | 'firmware' | 'sinks'>): void {
  if (options.components.includes('ingest') && options.sinks) checkSinkSelection(options.sinks)
  if (options.components.includes('controller') && !options.firmware) {
    throw usageError('E_CONTROLLER_OPTIONS', 'the controller component needs the CA directory (artifact server certificate) and the passphrase of the signing key', {hint: 'pass --ca-dir and --passphrase-file (or IOTCTL_CA_PASSPHRASE)'})
  }
  if (options.components.includes('broker')) {
    if (!options.broker) throw usageError('E_BROKER_OPTIONS', 'the broker component needs a CA directory and its passphrase', {hint: 'pass --ca-dir and --passphrase-file (or IOTCTL_CA_PASSPHRASE)'})
    return
  }
  const i = options.ingest
  if (!i?.brokerUrl) throw usageError('E_BROKER_URL', 'without the broker component, the services need a broker to subscribe to', {hint: 'pass --broker-url mqtts://HOST:PORT (or add the broker component)'})
  if (!/^mqtts?:\/\//.test(i.brokerUrl)) throw invalidInput('E_BROKER_URL', `--broker-url must be mqtt:// or mqtts://, not ${JSON.stringify(i.brokerUrl.split(':')[0])}`, {hint: 'e.g. mqtts://mqtt.example.com:8884'})
  if (i.brokerUrl.startsWith('mqtts:') && !i.tls) {
    throw usageError('E_IDENTITY', 'mqtts:// needs a service identity', {hint: 'pass --identity DIR from `iotctl certs issue --operator ingest-1 --out DIR`'})
  }
}

/**
 * `iotctl serve`: the long-lived services against external infrastructure. With `broker` the
 * embedded broker runs here and the ingest and shadow sync sit in its publish path (as in `dev up`);
 * without it they share one persistent session on an external broker (Mosquitto, EMQX, HiveMQ):
 * one, because Mosquitto makes the certificate's name the client id, so a second session with the
 * same identity would take the first one over.
 */
export async function startServices(options: ServeOptions): Promise<RunningServices> {
  checkServeOptions(options)
  const want = new Set(options.components)
  const stops: Array<() => Promise<void>> = []
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop()
  }
  try {
    const db = await options.database()
    let fail!: (error: IotctlError) => void
    const failed = new Promise<IotctlError>((resolve) => (fail = resolve))
    const ingestLog = (line: string) => options.log('ingest', line)
    const sinks = want.has('ingest') ? await openSinks(options.sinks ?? {kinds: ['postgres']}, db, ingestLog) : undefined
    if (sinks) stops.push(async () => {
      for (const sink of sinks) await sink.close()
    })
    const telemetry = sinks ? createTelemetryService(db, ingestLog, {sinks, onFatal: fail}) : undefined
    // Services publish through the broker or the session, which start after them.
    const outbox: {publisher?: ShadowPublisher} = {}
    const shadow = want.has('shadow')
      ? createShadowService(db, {publish: (topic, payload, o) => outbox.publisher!.publish(topic, payload, o)}, (line) => options.log('shadow', line))
      : undefined
    let firmware: FirmwareServices | undefined
    if (want.has('controller')) {
      const f = options.firmware!
      firmware = await startFirmwareServices({db, ...f, createKeys: false, log: (line) => options.log('controller', line),
        publish: (topic, payload, o) => outbox.publisher!.publish(topic, payload, {...o, retain: false})})
    }
    // Without the embedded broker there are no presence events: an online status also brings the shadow delta.
    const route = deviceMessageRouter({telemetry, shadow, rollouts: firmware?.controller, shadowOnStatus: true})
    let broker: RunningBroker | undefined
    let clientId: string | undefined
    if (want.has('broker')) {
      const b = options.broker!
      broker = await startBroker({
        db, caDir: b.caDir, passphrase: b.passphrase, host: b.host, devicePort: b.devicePort, servicePort: b.servicePort,
        maxPacketBytes: b.maxPacketBytes, log: (line) => options.log('broker', line),
        ...(telemetry || shadow || firmware ? {beforeAck: route} : {}),
        onPresence: (id, online) => {
          if (telemetry) void telemetry.presence(id, online)
          if (online && shadow) void shadow.deviceOnline(id)
        },
      })
      outbox.publisher = broker
      // Stops run in reverse: the broker closes first (storing what it took), then the last batch.
      stops.push(async () => telemetry?.flush())
      stops.push(() => broker!.close())
      options.log('broker', `MQTT over TLS: devices on ${b.host}:${broker.devicePort}, services on ${b.host}:${broker.servicePort}`)
    } else {
      const i = options.ingest!
      clientId = i.clientId ?? (i.tls ? commonName(i.tls.cert) : 'iotctl-services')
      const topics = [
        ...(telemetry ? INGEST_TOPICS.map((filter) => ({filter, group: INGEST_SHARE_GROUP})) : []),
        ...(shadow ? SHADOW_TOPICS.filter((f) => !(telemetry && f.endsWith('/status'))).map((filter) => ({filter, group: SHADOW_SHARE_GROUP})) : []),
        ...(firmware ? [...OTA_TOPICS, ...(telemetry || shadow ? [] : ['devices/+/status'])].map((filter) => ({filter, group: ROLLOUT_SHARE_GROUP})) : []),
      ]
      const subscriber = await startServiceSubscriber({brokerUrl: i.brokerUrl, clientId, tls: i.tls, topics, shared: i.shared,
        protocolVersion: i.protocolVersion, handle: route, log: (line) => options.log('serve', line)})
      outbox.publisher = subscriber
      stops.push(() => subscriber.close())
      stops.push(async () => telemetry?.flush())
    }
    if (firmware) {
      // Started once there is something to publish through; stopped first (stops run in reverse).
      firmware.start()
      stops.push(() => firmware!.stop())
    }
    if (shadow) {
      await shadow.start()
      stops.push(() => shadow.stop())
      stops.unshift(async () => {
        const s = shadow.stats
        options.log('shadow', `stopped: ${s.updates} updates accepted, ${s.rejected} rejected, ${s.gets} gets, ${s.deltas} deltas published`)
      })
    }
    if (telemetry) {
      stops.unshift(async () => {
        const s = telemetry.ingest.stats
        options.log('ingest', `stopped after ${s.messages} messages: ${s.inserted} new points stored, ${s.points - s.inserted} duplicates ignored, ${s.rejected} rejected`)
      })
    }
    const mode = broker ? 'in-broker' : 'subscriber'
    return {
      components: options.components,
      broker: broker ? {devicePort: broker.devicePort, servicePort: broker.servicePort} : undefined,
      ingest: telemetry ? {mode, ...(clientId ? {clientId} : {})} : undefined,
      shadow: shadow ? {mode, ...(clientId ? {clientId} : {})} : undefined,
      controller: firmware ? {artifactPort: firmware.artifacts.port, artifactUrl: firmware.artifacts.baseUrl} : undefined,
      telemetry,
      sinks: sinks?.map((s) => s.kind),
      failed,
      stop: stopAll,
    }
  } catch (error) {
    await stopAll().catch(() => undefined)
    throw error
  }
}
