import type {Database} from '../db/pool.js'
import type {TlsIdentity} from '../mqtt/client.js'
import {startServiceSubscriber} from '../mqtt/subscriber.js'
import {createTelemetryService, type TelemetryService} from './service.js'

export interface MqttIngestOptions {
  db: Database
  brokerUrl: string
  clientId: string
  tls?: TlsIdentity
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
 * The ingest alone as an MQTT subscriber, for external brokers (Mosquitto, EMQX, HiveMQ): a
 * persistent QoS 1 session whose PUBACKs follow the commits, so a killed worker loses nothing
 * (the broker redelivers; ON CONFLICT DO NOTHING makes the redelivery harmless, rollups included).
 */
export async function startMqttIngest(options: MqttIngestOptions): Promise<RunningMqttIngest> {
  const telemetry = createTelemetryService(options.db, options.log, {maxPoints: options.maxPoints, maxDelayMs: options.maxDelayMs})
  const subscriber = await startServiceSubscriber({
    brokerUrl: options.brokerUrl, clientId: options.clientId, tls: options.tls, topics: INGEST_TOPICS.map((filter) => ({filter, group: INGEST_SHARE_GROUP})),
    shared: options.shared ?? false, protocolVersion: options.protocolVersion,
    handle: (topic, payload) => telemetry.handle(topic, payload), log: options.log,
  })
  return {
    telemetry,
    connects: () => subscriber.connects(),
    stop: async () => {
      await telemetry.flush()
      await subscriber.close()
    },
  }
}
