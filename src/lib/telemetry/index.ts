import type {RunningBroker} from '../broker/server.js'
import type {Database} from '../db/pool.js'
import {parseDeviceTopic} from '../mqtt/topics.js'
import {TelemetryIngest} from './ingest.js'

export {TelemetryIngest, type IngestStats} from './ingest.js'
export {parseTelemetry, type TelemetryPoint} from './payload.js'
export {writeTelemetry} from './store.js'

const STATUS: Record<string, 'active' | 'offline'> = {online: 'active', offline: 'offline'}

/**
 * The in-process ingest of the dev stack: telemetry batched into PostgreSQL (PUBACK after commit)
 * and `status` messages (the Will included) setting devices.status and last_seen_at.
 */
export async function startIngest(broker: RunningBroker, db: Database, log: (line: string) => void): Promise<TelemetryIngest> {
  const ingest = new TelemetryIngest({db, log})
  await broker.subscribe('devices/+/telemetry', (topic, payload, done) => {
    const parsed = parseDeviceTopic(topic)
    if (!parsed) return setImmediate(done)
    // aedes has already acknowledged the sender (RunningBroker.subscribe), so holding `done` buys
    // no durability; it only paces delivery. Hold it only when the backlog is high.
    // (`done` is deferred: called synchronously, mqemitter would deliver the next queued message
    // inside this call, and a long queue overflows the stack.)
    const stored = ingest.accept(parsed.deviceId, payload)
    if (ingest.busy) void stored.then(done)
    else setImmediate(done)
  })
  await broker.subscribe('devices/+/status', (topic, payload, done) => {
    const parsed = parseDeviceTopic(topic)
    let state: unknown
    try {
      state = (JSON.parse(payload.toString('utf8')) as {state?: unknown}).state
    } catch {
      state = payload.toString('utf8').trim()
    }
    const status = typeof state === 'string' ? STATUS[state] : undefined
    if (!parsed || !status) {
      log(`status from ${topic} ignored: expected {"state": "online" | "offline"}`)
      return done()
    }
    db.pool.query(`UPDATE devices SET status = $2, last_seen_at = now() WHERE device_id = $1 AND status <> 'deprovisioned'`, [parsed.deviceId, status])
      .then(() => done(), (error: Error) => {
        log(`status update for ${parsed.deviceId} failed: ${error.message}`)
        done()
      })
  })
  return ingest
}
