/**
 * Telemetry payload validation, docs/PROTOCOL.md: `{"ts": <epoch ms | RFC 3339>, "seq": <integer>,
 * "metrics": {"<name>": <number>, …}}`. Pure; a bad payload yields a reason, never an exception.
 */
export interface TelemetryPoint {
  device_id: string
  metric: string
  ts: string
  value: number
  seq: number
  /**
   * Epoch nanoseconds as a decimal string, only when the device's timestamp is finer than a
   * millisecond (`ts` then holds it truncated to ms, all PostgreSQL's path needs); the InfluxDB
   * sink writes it exactly. Absent in the common case, so the PostgreSQL batch stays as small.
   */
  ns?: string
}

export type ParsedTelemetry = {ok: true; points: TelemetryPoint[]} | {ok: false; reason: string}

export const TELEMETRY_LIMITS = {maxBytes: 16 * 1024, maxMetrics: 100, futureSkewMs: 24 * 3600 * 1000}
const METRIC_NAME = /^[A-Za-z0-9_.-]{1,64}$/
const EARLIEST = Date.UTC(2000, 0, 1)

function timestamp(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    const ms = Date.parse(value)
    return Number.isNaN(ms) ? undefined : ms
  }
  return undefined
}

/**
 * Epoch nanoseconds for a timestamp finer than a millisecond, exactly (no float arithmetic on the
 * RFC 3339 digits); undefined when `ms` already says everything.
 */
export function finerThanMs(ts: unknown, ms: number): string | undefined {
  if (typeof ts === 'number') {
    if (Number.isInteger(ts)) return undefined
    const whole = Math.floor(ts)
    return (BigInt(whole) * 1_000_000n + BigInt(Math.round((ts - whole) * 1e6))).toString()
  }
  const fraction = /\.(\d+)/.exec(String(ts))?.[1] ?? ''
  if (fraction.length <= 3) return undefined
  const sub = fraction.slice(3, 9).padEnd(6, '0') // beyond nanoseconds is dropped
  if (/^0+$/.test(sub)) return undefined
  return (BigInt(Math.floor(ms)) * 1_000_000n + BigInt(sub)).toString()
}

/** Epoch nanoseconds of a point, as a decimal string. */
export function pointNs(point: TelemetryPoint): string {
  return point.ns ?? `${Date.parse(point.ts)}000000`
}

export function parseTelemetry(deviceId: string, payload: Buffer, now = Date.now()): ParsedTelemetry {
  if (payload.length > TELEMETRY_LIMITS.maxBytes) return {ok: false, reason: `payload of ${payload.length} bytes exceeds ${TELEMETRY_LIMITS.maxBytes}`}
  let body: unknown
  try {
    body = JSON.parse(payload.toString('utf8'))
  } catch {
    return {ok: false, reason: 'payload is not JSON'}
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return {ok: false, reason: 'payload is not a JSON object'}
  const {ts, seq, metrics} = body as Record<string, unknown>
  const ms = timestamp(ts)
  if (ms === undefined) return {ok: false, reason: 'ts must be epoch milliseconds or an RFC 3339 timestamp'}
  if (ms < EARLIEST || ms > now + TELEMETRY_LIMITS.futureSkewMs) return {ok: false, reason: `ts ${new Date(ms).toISOString()} is out of range`}
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return {ok: false, reason: 'seq must be a non-negative integer'}
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) return {ok: false, reason: 'metrics must be an object of numbers'}
  const entries = Object.entries(metrics as Record<string, unknown>)
  if (entries.length === 0 || entries.length > TELEMETRY_LIMITS.maxMetrics) return {ok: false, reason: `metrics must hold 1 to ${TELEMETRY_LIMITS.maxMetrics} values`}
  const iso = new Date(ms).toISOString()
  const ns = finerThanMs(ts, ms)
  const points: TelemetryPoint[] = []
  for (const [metric, value] of entries) {
    if (!METRIC_NAME.test(metric)) return {ok: false, reason: `metric name ${JSON.stringify(metric.slice(0, 70))} is not allowed`}
    if (typeof value !== 'number' || !Number.isFinite(value)) return {ok: false, reason: `metric ${metric} is not a finite number`}
    points.push(ns === undefined ? {device_id: deviceId, metric, ts: iso, value, seq} : {device_id: deviceId, metric, ts: iso, value, seq, ns})
  }
  return {ok: true, points}
}
