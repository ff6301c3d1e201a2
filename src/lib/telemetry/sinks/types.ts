import type {TelemetryPoint} from '../payload.js'

export const SINK_KINDS = ['postgres', 'influx'] as const
export type SinkKind = (typeof SINK_KINDS)[number]

/**
 * Where the ingest stores telemetry (DESIGN.md §5: one interface, several backends, one contract
 * test suite run against each). `write` resolves only once the points are durable at the sink:
 * the ingest acknowledges QoS 1 messages on that promise.
 */
export interface TelemetrySink {
  readonly kind: SinkKind
  /**
   * Store one batch; resolves with the points that were new (PostgreSQL: inserted rows;
   * InfluxDB: every point, since a rewrite of the same series and time is an overwrite).
   * Rejects with a SinkError: `permanent` says that retrying can never succeed.
   */
  write(points: TelemetryPoint[]): Promise<number>
  close(): Promise<void>
}

export interface SinkErrorDetails {
  /** HTTP status of the refusal, when there was one. */
  status?: number
  /** What to do about a permanent error. */
  hint?: string
  /** The server asked for this pause (429 Retry-After). */
  retryAfterMs?: number
  cause?: unknown
}

/** A failed write; `permanent` (a bad token, an unknown bucket) stops the ingest instead of retrying. */
export class SinkError extends Error {
  readonly status?: number
  readonly hint?: string
  readonly retryAfterMs?: number

  constructor(readonly sink: SinkKind, message: string, readonly permanent: boolean, details: SinkErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : {cause: details.cause})
    this.name = 'SinkError'
    this.status = details.status
    this.hint = details.hint
    this.retryAfterMs = details.retryAfterMs
  }
}

/** The InfluxDB endpoint of a context or of --influx-* flags (the token is never printed). */
export interface InfluxSettings {
  url: string
  token: string
  org: string
  bucket: string
  /** Device labels written as tags besides `device` and `type`. */
  labels: string[]
}

/** Parse `postgres`, `influx` or `postgres,influx` (order kept, duplicates dropped). */
export function parseSinkKinds(text: string): SinkKind[] | undefined {
  const names = [...new Set(text.split(',').map((s) => s.trim()).filter(Boolean))]
  if (names.length === 0 || names.some((n) => !(SINK_KINDS as readonly string[]).includes(n))) return undefined
  return names as SinkKind[]
}
