import type {Database} from '../db/pool.js'
import {acknowledgeAfter, connectMqtt, type TlsIdentity} from '../mqtt/client.js'
import {invalidInput, unavailable} from '../core/errors.js'
import {createTelemetryService, type TelemetryService} from './service.js'

export interface MqttIngestOptions {
  db: Database
  brokerUrl: string
  /** The session name; with Mosquitto's use_username_as_clientid it is the certificate's CN. */
  clientId: string
  tls?: TlsIdentity
  /** Share the load with other workers: `$share/iotctl-ingest/…` (MQTT 5 §4.8.2; Mosquitto and EMQX accept it on 3.1.1 too). */
  shared?: boolean
  protocolVersion?: 4 | 5
  /** Batch limits of the ingest (points, milliseconds). */
  maxPoints?: number
  maxDelayMs?: number
  log: (line: string) => void
}

export interface RunningMqttIngest {
  telemetry: TelemetryService
  /** Sessions made to the broker so far (reconnects included). */
  connects(): number
  /** Store everything taken, send its PUBACKs, then leave (the session and its queue stay at the broker). */
  stop(): Promise<void>
}

export const INGEST_SHARE_GROUP = 'iotctl-ingest'
export const INGEST_TOPICS = ['devices/+/telemetry', 'devices/+/status'] as const

/**
 * The ingest as an MQTT subscriber, for external brokers (Mosquitto, EMQX, HiveMQ): a persistent
 * session at QoS 1, so messages wait at the broker while the worker restarts, and each PUBACK only
 * after its message is committed, so a killed worker loses nothing (the broker redelivers;
 * ON CONFLICT DO NOTHING makes the redelivery harmless, rollups included).
 */
export async function startMqttIngest(options: MqttIngestOptions): Promise<RunningMqttIngest> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(options.clientId)) {
    throw invalidInput('E_CLIENT_ID', `invalid client id ${JSON.stringify(options.clientId)}`, {hint: 'use letters, digits, ".", "_" and "-" (the service certificate\'s name)'})
  }
  const telemetry = createTelemetryService(options.db, options.log, {maxPoints: options.maxPoints, maxDelayMs: options.maxDelayMs})
  const managed = await connectMqtt({
    url: options.brokerUrl, clientId: options.clientId, tls: options.tls, clean: false,
    protocolVersion: options.protocolVersion, receiveMaximum: 2000, log: options.log,
  })
  const acks = acknowledgeAfter(managed.client, (topic, payload) => telemetry.handle(topic, payload))
  const filters = INGEST_TOPICS.map((t) => (options.shared ? `$share/${INGEST_SHARE_GROUP}/${t}` : t))
  try {
    const granted = await managed.client.subscribeAsync(filters, {qos: 1})
    const refused = granted.filter((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2)
    if (refused.length > 0) {
      throw unavailable('E_SUBSCRIBE_REFUSED', `the broker refused ${refused.map((g) => g.topic).join(', ')}`, {
        hint: 'the service identity needs read access to devices/# (see `iotctl broker config mosquitto`), and --shared needs a broker with shared subscriptions',
      })
    }
    // The session is persistent: a worker switched between shared and not keeps its old
    // subscription at the broker, and would get every message twice. Drop the other form.
    const other = INGEST_TOPICS.map((t) => (options.shared ? t : `$share/${INGEST_SHARE_GROUP}/${t}`))
    await managed.client.unsubscribeAsync(other)
  } catch (error) {
    await managed.close().catch(() => undefined)
    throw error
  }
  options.log(`ingest subscribed to ${filters.join(', ')} as ${options.clientId} (persistent session, QoS 1, PUBACK after commit)`)
  return {
    telemetry,
    connects: () => managed.connects,
    stop: async () => {
      await telemetry.flush()
      await acks.drain()
      await managed.close()
    },
  }
}
