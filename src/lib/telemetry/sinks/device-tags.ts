import type {Database} from '../../db/pool.js'
import type {DeviceTags} from './line-protocol.js'

/** Tags that would clash with the line's own (`device`) or with InfluxDB's reserved `_` keys. */
const RESERVED = (key: string) => key === 'device' || key === 'type' || key.startsWith('_')

/**
 * Device type and chosen labels for the InfluxDB tags, read from the registry (PostgreSQL stays
 * the source of truth) and cached: a batch of known devices costs no query. Entries expire after
 * `ttlMs`, so a relabelled device gets its new tags within that time; when the registry cannot
 * be read, stale entries are used rather than stalling the sink.
 */
export class DeviceTagCache {
  private readonly cache = new Map<string, {tags: DeviceTags; at: number}>()

  constructor(private readonly db: Database, private readonly labels: string[], private readonly ttlMs = 60_000) {}

  /** Load what `devices` needs; afterwards `get` answers from memory. */
  async load(devices: Iterable<string>): Promise<void> {
    const now = Date.now()
    const missing = [...new Set(devices)].filter((d) => (this.cache.get(d)?.at ?? -Infinity) < now - this.ttlMs)
    if (missing.length === 0) return
    let rows: Array<{device_id: string; device_type: string; labels: Record<string, unknown>}>
    try {
      ;({rows} = await this.db.pool.query('SELECT device_id, device_type, labels FROM devices WHERE device_id = ANY($1)', [missing]))
    } catch (error) {
      if (missing.every((d) => this.cache.has(d))) return // stale tags beat a stalled ingest
      throw error
    }
    for (const d of missing) this.cache.set(d, {tags: {}, at: now}) // unregistered: the device tag only
    for (const row of rows) {
      const tags: DeviceTags = {type: row.device_type}
      for (const key of this.labels) {
        const value = row.labels[key]
        if (!RESERVED(key) && value !== undefined && value !== null) tags[key] = String(value)
      }
      this.cache.set(row.device_id, {tags, at: now})
    }
  }

  get(device: string): DeviceTags | undefined {
    return this.cache.get(device)?.tags
  }
}
