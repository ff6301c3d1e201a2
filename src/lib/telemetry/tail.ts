import {randomBytes} from 'node:crypto'
import {notFound} from '../core/errors.js'
import type {Database} from '../db/pool.js'
import {connectMqtt, type TlsIdentity} from '../mqtt/client.js'
import {deviceTopic, parseDeviceTopic} from '../mqtt/topics.js'
import {deviceSelectionSql} from '../registry/index.js'
import {parseTelemetry} from './payload.js'

export interface TailMessage {
  ts: string
  device_id: string
  seq: number | null
  metrics: Record<string, number>
  /** 'history' for replayed rows (--since), 'live' for messages as they arrive. */
  source: 'history' | 'live'
}

export interface TailOptions {
  db: Database
  broker: {url: string; tls?: TlsIdentity}
  deviceId?: string
  selector?: string
  type?: string
  metric?: string
  /** Replay this much history from the database first, then continue live. */
  sinceMs?: number
  signal: AbortSignal
  onMessage: (message: TailMessage) => void
  /** Stop after this many messages (scripts, tests). */
  maxMessages?: number
}

const key = (deviceId: string, tsMs: number) => `${deviceId}|${tsMs}`

/**
 * `telemetry tail`: live telemetry from the broker, optionally after the recent history from the
 * database. The subscription starts first and buffers; the history is read; then the buffer and
 * everything after it is printed, skipping what the history already showed. No gap: the broker
 * stores a message before it forwards it (PUBACK after commit), so a message is either in the
 * history or delivered to the subscription. No duplicate: (device, ts) identifies a point.
 */
export async function tailTelemetry(options: TailOptions): Promise<{messages: number}> {
  const devices = await selectDevices(options)
  const managed = await connectMqtt({url: options.broker.url, tls: options.broker.tls, clientId: `iotctl-cli-tail-${randomBytes(4).toString('hex')}`, clean: true})
  let emitted = 0
  let finish: () => void = () => undefined
  const done = new Promise<void>((resolve) => (finish = resolve))
  const emit = (m: TailMessage) => {
    if (emitted >= (options.maxMessages ?? Infinity)) return
    options.onMessage(m)
    if (++emitted >= (options.maxMessages ?? Infinity)) finish()
  }
  const shown = new Set<string>()
  let buffer: Array<{deviceId: string; payload: Buffer}> | undefined = options.sinceMs === undefined ? undefined : []
  const live = (deviceId: string, payload: Buffer) => {
    const parsed = parseTelemetry(deviceId, payload)
    if (!parsed.ok || parsed.points.length === 0) return
    const tsMs = Date.parse(parsed.points[0]!.ts)
    if (shown.has(key(deviceId, tsMs))) return
    const metrics: Record<string, number> = {}
    for (const p of parsed.points) if (!options.metric || p.metric === options.metric) metrics[p.metric] = p.value
    if (Object.keys(metrics).length === 0) return
    emit({ts: new Date(tsMs).toISOString(), device_id: deviceId, seq: parsed.points[0]!.seq ?? null, metrics, source: 'live'})
  }
  managed.client.on('message', (topic, payload) => {
    const parsed = parseDeviceTopic(topic)
    if (!parsed || parsed.leaf !== 'telemetry' || (devices && !devices.has(parsed.deviceId))) return
    if (buffer) buffer.push({deviceId: parsed.deviceId, payload})
    else live(parsed.deviceId, payload)
  })
  try {
    await managed.client.subscribeAsync(options.deviceId ? deviceTopic(options.deviceId, 'telemetry') : 'devices/+/telemetry', {qos: 1})
    if (options.sinceMs !== undefined) {
      for (const row of await history(options, devices)) {
        shown.add(key(row.device_id, Date.parse(row.ts)))
        emit({...row, source: 'history'})
      }
      const buffered = buffer ?? []
      buffer = undefined
      for (const m of buffered) live(m.deviceId, m.payload)
    }
    if (emitted < (options.maxMessages ?? Infinity)) {
      options.signal.addEventListener('abort', () => finish(), {once: true})
      if (!options.signal.aborted) await done
    }
  } finally {
    await managed.close()
  }
  return {messages: emitted}
}

/** The devices of --selector/--type (undefined: all); an unknown --device is exit 3. */
async function selectDevices(options: TailOptions): Promise<Set<string> | undefined> {
  if (options.deviceId) {
    const {rowCount} = await options.db.pool.query('SELECT 1 FROM devices WHERE device_id = $1', [options.deviceId])
    if (!rowCount) throw notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(options.deviceId)} not found`, {hint: 'list devices with `iotctl devices list`'})
    return new Set([options.deviceId])
  }
  if (!options.selector && !options.type) return undefined
  const params: unknown[] = []
  const where = deviceSelectionSql({selector: options.selector, type: options.type}, params)
  const {rows} = await options.db.pool.query<{device_id: string}>(`SELECT device_id FROM devices WHERE ${where}`, params)
  return new Set(rows.map((r) => r.device_id))
}

async function history(options: TailOptions, devices: Set<string> | undefined): Promise<Array<Omit<TailMessage, 'source'>>> {
  const params: unknown[] = [options.sinceMs! / 1000]
  const where = ['ts >= now() - make_interval(secs => $1)']
  if (devices) {
    params.push([...devices])
    where.push(`device_id = ANY($${params.length}::text[])`)
  }
  if (options.metric) {
    params.push(options.metric)
    where.push(`metric = $${params.length}`)
  }
  const {rows} = await options.db.pool.query<{device_id: string; ts: Date; seq: string | null; metrics: Record<string, number>}>(
    `SELECT device_id, ts, max(seq) AS seq, jsonb_object_agg(metric, value) AS metrics FROM telemetry
     WHERE ${where.join(' AND ')} GROUP BY device_id, ts ORDER BY ts, device_id`, params)
  return rows.map((r) => ({ts: r.ts.toISOString(), device_id: r.device_id, seq: r.seq === null ? null : Number(r.seq), metrics: r.metrics}))
}
