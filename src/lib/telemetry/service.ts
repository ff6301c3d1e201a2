import type {Database} from '../db/pool.js'
import {parseDeviceTopic} from '../mqtt/topics.js'
import {TelemetryIngest, type IngestOptions} from './ingest.js'
import {enforceRetention} from './retention.js'
import {parseStatus, setDeviceStatus} from './status.js'

export interface TelemetryService {
  readonly ingest: TelemetryIngest
  /**
   * Take one device message. Resolves once it is stored (telemetry in every sink, status updated)
   * or dropped as invalid (counted and logged): the caller acknowledges on it (QoS 1 PUBACK only
   * after the commit), and one bad message must not block others. Rejects only after a sink
   * refused for good (the ingest stopped, see IngestOptions.onFatal): never acknowledge then.
   */
  handle(topic: string, payload: Buffer): Promise<void>
  /** A device's session opened or closed (the embedded broker knows; external brokers send Wills). */
  presence(deviceId: string, online: boolean): Promise<void>
  /** Store everything accepted so far. */
  flush(): Promise<void>
  /** Stop the retention schedule (the process may also just exit: its timer does not hold it). */
  stop(): void
}

/** How often the ingest drops partitions past the retention (`telemetry retention set`). */
export const RETENTION_EVERY_MS = 3_600_000

const done = Promise.resolve()

/** The ingest's message router, shared by the embedded broker hook and the MQTT subscriber. */
export function createTelemetryService(db: Database, log: (line: string) => void, options: Omit<IngestOptions, 'db' | 'log'> & {retention?: boolean; retentionDelayMs?: number} = {}): TelemetryService {
  const ingest = new TelemetryIngest({...options, db, log})
  // Retention is enforced here, by dropping whole day partitions (never row deletes): soon after
  // start, then hourly. A failure is logged and retried on the next run.
  const retain = () => enforceRetention(db).then((run) => {
    for (const p of run.dropped) log(`retention: dropped ${p.partition} (${p.tier} before ${p.to})`)
    if (run.skipped.length > 0) log(`retention: ${run.skipped.length} partitions busy, retrying next hour`)
  }, (error: Error) => log(`retention failed: ${error.message}`))
  const timers = options.retention === false ? [] : [setTimeout(() => void retain(), options.retentionDelayMs ?? 5000), setInterval(() => void retain(), RETENTION_EVERY_MS)]
  for (const t of timers) t.unref()
  // Status changes of one device apply in arrival order ("online" then its Will's "offline" must
  // not be reordered by the connection pool): one promise chain per device while work is pending.
  const chains = new Map<string, Promise<void>>()
  const inOrder = (deviceId: string, what: string, work: () => Promise<void>) => {
    const next = (chains.get(deviceId) ?? done).then(work).catch((error: Error) => log(`${what} failed: ${error.message}`))
    chains.set(deviceId, next)
    void next.then(() => {
      if (chains.get(deviceId) === next) chains.delete(deviceId)
    })
    return next
  }
  return {
    ingest,
    handle(topic, payload) {
      const parsed = parseDeviceTopic(topic)
      if (!parsed) return done
      if (parsed.leaf === 'telemetry') return ingest.accept(parsed.deviceId, payload)
      if (parsed.leaf !== 'status') return done
      const status = parseStatus(payload)
      if (!status) {
        log(`status from ${parsed.deviceId} ignored: expected {"state": "online" | "offline"}`)
        return done
      }
      return inOrder(parsed.deviceId, `status update for ${parsed.deviceId}`, () => setDeviceStatus(db, parsed.deviceId, status))
    },
    presence: (deviceId, online) => inOrder(deviceId, `presence of ${deviceId}`, () => setDeviceStatus(db, deviceId, online ? 'active' : 'offline')),
    flush: async () => {
      await Promise.all([ingest.flush(), ...chains.values()])
    },
    stop: () => {
      for (const t of timers) clearTimeout(t)
    },
  }
}
