import {randomBytes} from 'node:crypto'
import {readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {notFound} from '../core/errors.js'
import type {Database} from '../db/pool.js'
import {startBroker, type RunningBroker} from '../broker/server.js'
import {initCa, issueOperatorCertificate, publishCrls, supersedePredecessors, writeIssued} from '../pki/index.js'
import {createShadowService, type ShadowService} from '../shadow/index.js'
import type {IotctlError} from '../core/errors.js'
import {createTelemetryService, openSinks, type SinkSelection, type TelemetryService} from '../telemetry/index.js'
import {deviceMessageRouter} from './router.js'
import {defaultFirmwareDirs, startFirmwareServices, type FirmwareServices} from './firmware-services.js'

export interface DevBrokerOptions {
  home: string
  db: Database
  mqttPort: number
  servicePort: number
  maxPacketBytes?: number
  /** HTTPS port of the firmware artifact server (0: any free port). */
  artifactPort?: number
  /** How often the rollout controller steps (default 1 s; tests and the demo go faster). */
  rolloutTickMs?: number
  /** Each service's log: the broker (CA, listeners, refusals), the telemetry ingest, the shadow sync, rollouts. */
  logs: {broker: (line: string) => void; ingest: (line: string) => void; shadow: (line: string) => void; rollout?: (line: string) => void}
  /** Where telemetry is stored (default PostgreSQL alone). */
  sinks?: SinkSelection
  /** A sink refused for good: the stack should stop. */
  onFatal?: (error: IotctlError) => void
}

const exists = (path: string) => stat(path).then(() => true, () => false)

/**
 * The dev stack's CA passphrase: IOTCTL_CA_PASSPHRASE when set; otherwise one generated for a CA
 * that `dev up` creates itself, kept beside it in ca/dev-passphrase (0600), a development
 * convenience like the database password (a CA from `ca init` never gets this file). It lives with
 * the CA, not under dev/, so `dev reset` cannot orphan a CA whose keys nobody can decrypt.
 */
async function devPassphrase(caDir: string, caExists: boolean): Promise<string> {
  if (process.env.IOTCTL_CA_PASSPHRASE) return process.env.IOTCTL_CA_PASSPHRASE
  const file = join(caDir, 'dev-passphrase')
  const stored = await readFile(file, 'utf8').catch(() => undefined)
  if (stored) return stored.trim()
  if (caExists) {
    throw notFound('E_CA_PASSPHRASE', 'the CA exists but its passphrase is unknown to the dev stack', {
      hint: 'set IOTCTL_CA_PASSPHRASE to the passphrase given to `iotctl ca init`',
    })
  }
  const generated = randomBytes(24).toString('base64url')
  return generated
}

/** Ensure a CA (creating one on first `dev up`), publish fresh CRLs, start the embedded broker. */
export async function startDevBroker(options: DevBrokerOptions): Promise<{broker: RunningBroker; caDir: string; identityDir: string; telemetry: TelemetryService; shadow: ShadowService; firmware: FirmwareServices}> {
  const caDir = join(options.home, 'ca')
  const caExists = await exists(join(caDir, 'root.crt'))
  const passphrase = await devPassphrase(caDir, caExists)
  if (!caExists) {
    options.logs.broker(`creating a CA in ${caDir}`)
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase, sans: [], force: false})
    if (!process.env.IOTCTL_CA_PASSPHRASE) await writeFile(join(caDir, 'dev-passphrase'), passphrase + '\n', {mode: 0o600})
  }
  await publishCrls(options.db, {caDir, passphrase})
  // The CLI's own service identity (for `telemetry tail` and other commands that speak MQTT),
  // renewed at every start: the stack record points commands at it.
  const identityDir = join(options.home, 'dev', 'identity')
  await writeIssued(identityDir, await issueOperatorCertificate(options.db, {caDir, passphrase, name: 'iotctl-cli', days: 30}), 'operator')
  // The ingest and the shadow sync run inside the broker's publish path: a device's PUBACK comes
  // after its telemetry is committed, or after its shadow update was applied and answered.
  const sinks = await openSinks(options.sinks ?? {kinds: ['postgres']}, options.db, options.logs.ingest)
  if (options.sinks) options.logs.ingest(`telemetry sinks: ${sinks.map((s) => s.kind).join(', ')}`)
  const telemetry = createTelemetryService(options.db, options.logs.ingest, {sinks, onFatal: options.onFatal})
  // The shadow service publishes through the broker, which starts after it: publishing waits for it.
  const started: {broker?: RunningBroker} = {}
  const shadow: ShadowService = createShadowService(options.db, {publish: (topic, payload, o) => started.broker!.publish(topic, payload, o)}, options.logs.shadow)
  const firmware = await startFirmwareServices({db: options.db, ...defaultFirmwareDirs(options.home), caDir, passphrase, host: '127.0.0.1',
    artifactPort: options.artifactPort ?? 0, tickMs: options.rolloutTickMs, createKeys: true, log: options.logs.rollout ?? options.logs.broker,
    publish: (topic, payload, o) => started.broker!.publish(topic, payload, {...o, retain: false})})
  // A broker that cannot start (a port in use) must not leave the artifact server holding the process open.
  const broker = await startBroker({
    // Presence events (below) bring shadow deltas; an online status brings open firmware assignments.
    beforeAck: deviceMessageRouter({telemetry, shadow, rollouts: firmware.controller, shadowOnStatus: false}),
    onPresence: (deviceId, online) => {
      void telemetry.presence(deviceId, online)
      if (online) void shadow.deviceOnline(deviceId)
    },
    db: options.db, caDir, passphrase, devicePort: options.mqttPort, servicePort: options.servicePort, maxPacketBytes: options.maxPacketBytes, log: options.logs.broker,
    onDeviceAuthenticated: async (identity) => {
      const superseded = await supersedePredecessors(options.db.pool, identity.serial)
      if (superseded.length > 0) options.logs.broker(`${identity.name} connected with a rotated certificate; superseded ${superseded.join(', ')}`)
    },
  }).catch(async (error: unknown) => {
    await firmware.stop()
    throw error
  })
  options.logs.broker(`MQTT over TLS: devices on 127.0.0.1:${broker.devicePort}, services on 127.0.0.1:${broker.servicePort}`)
  started.broker = broker
  await shadow.start()
  firmware.start()
  return {broker, caDir, identityDir, telemetry, shadow, firmware}
}
