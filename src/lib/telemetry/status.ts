import type {Database} from '../db/pool.js'

const STATUS: Record<string, 'active' | 'offline'> = {online: 'active', offline: 'offline'}

/** `{"state": "online" | "offline"}` (or the bare word, as mosquitto_pub users send) → a registry status. */
export function parseStatus(payload: Buffer): 'active' | 'offline' | undefined {
  let state: unknown
  try {
    state = (JSON.parse(payload.toString('utf8')) as {state?: unknown}).state
  } catch {
    state = payload.toString('utf8').trim()
  }
  return typeof state === 'string' ? STATUS[state] : undefined
}

/** A status message, a Will, or a connect/disconnect event: devices.status and last_seen_at. */
export async function setDeviceStatus(db: Database, deviceId: string, status: 'active' | 'offline'): Promise<void> {
  await db.pool.query(`UPDATE devices SET status = $2, last_seen_at = now() WHERE device_id = $1 AND status <> 'deprovisioned'`, [deviceId, status])
}
