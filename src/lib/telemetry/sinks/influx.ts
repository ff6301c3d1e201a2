import type {HttpError as HttpErrorType, WriteApi} from '@influxdata/influxdb-client'
import type {Database} from '../../db/pool.js'
import {maskUrl} from '../../core/url.js'
import type {TelemetryPoint} from '../payload.js'
import {DeviceTagCache} from './device-tags.js'
import {toLineProtocol} from './line-protocol.js'
import {SinkError, type InfluxSettings, type TelemetrySink} from './types.js'

export interface InfluxSinkOptions {
  /** The registry the `type` and label tags come from. */
  db: Database
  /** Per-request timeout (default 10 s, the client's). */
  timeoutMs?: number
  log?: (line: string) => void
}

const LARGEST_BATCH_LINES = 100_000 // above the ingest's largest write (MAX_WRITE_POINTS): one request per batch

/** Load the client lazily (DESIGN.md §2) and route its console logging to ours. */
async function loadClient(log: (line: string) => void) {
  const client = await import('@influxdata/influxdb-client')
  // The client logs every failed write itself; the ingest logs each failure once with its retry.
  client.setLogger({error: () => undefined, warn: (message) => log(`influxdb-client: ${message}`)})
  return client
}

/** Why a 4xx will never succeed, and what to do about it. */
function refusalHint(status: number): string {
  if (status === 401 || status === 403) return 'check --influx-token / IOTCTL_INFLUX_TOKEN: the sink needs write access to the bucket, queries read access'
  if (status === 404) return 'check --influx-org and --influx-bucket; `iotctl telemetry setup influx` creates the bucket'
  if (status === 413) return 'the server refuses batches this large: raise its request size limit'
  return 'the server refused the points themselves; see its message'
}

/**
 * Classify a failed write: 429, 5xx, timeouts and network errors are retried (InfluxDB is down,
 * overloaded or restarting); any other 4xx never succeeds on retry and stops the sink.
 */
export function classifyInfluxError(error: unknown, url: string, HttpError: typeof HttpErrorType): SinkError {
  const where = `InfluxDB at ${maskUrl(url)}`
  if (error instanceof HttpError) {
    const status = error.statusCode
    const detail = (error.json as {message?: string} | undefined)?.message ?? error.body?.trim().slice(0, 200) ?? error.statusMessage ?? ''
    const message = `${where} answered ${status}${error.statusMessage ? ` ${error.statusMessage}` : ''}${detail && detail !== error.statusMessage ? `: ${detail}` : ''}`
    if (status === 429 || status === 408 || status >= 500) {
      const header = Number(error.headers?.['retry-after'])
      return new SinkError('influx', message, false, {status, cause: error, ...(status === 429 && header > 0 ? {retryAfterMs: header * 1000} : {})})
    }
    return new SinkError('influx', message, true, {status, hint: refusalHint(status), cause: error})
  }
  return new SinkError('influx', `${where} unreachable: ${(error as Error)?.message ?? String(error)}`, false, {cause: error})
}

/**
 * The InfluxDB sink: line protocol over `/api/v2/write` (InfluxDB 2.x, 3.x through its v2 API,
 * VictoriaMetrics), nanosecond precision. One write per ingest batch, awaited: the client's own
 * retry buffer is off (maxRetries 0) because it would report success before the points are
 * stored; the ingest retries instead, with the messages unacknowledged meanwhile.
 */
export async function createInfluxSink(settings: InfluxSettings, options: InfluxSinkOptions): Promise<TelemetrySink> {
  const log = options.log ?? (() => undefined)
  const {InfluxDB, HttpError} = await loadClient(log)
  const influx = new InfluxDB({url: settings.url, token: settings.token, timeout: options.timeoutMs ?? 10_000})
  const writeApi: WriteApi = influx.getWriteApi(settings.org, settings.bucket, 'ns', {
    batchSize: LARGEST_BATCH_LINES, flushInterval: 0, maxRetries: 0, maxBatchBytes: 256 * 1024 * 1024, maxBufferLines: 0,
  })
  const tags = new DeviceTagCache(options.db, settings.labels)
  return {
    kind: 'influx',
    async write(points: TelemetryPoint[]): Promise<number> {
      if (points.length === 0) return 0
      try {
        await tags.load(points.map((p) => p.device_id))
      } catch (error) {
        throw new SinkError('influx', `device tags unavailable: ${(error as Error).message}`, false, {cause: error})
      }
      writeApi.writeRecords(toLineProtocol(points, (device) => tags.get(device)))
      try {
        await writeApi.flush()
      } catch (error) {
        throw classifyInfluxError(error, settings.url, HttpError)
      }
      return points.length
    },
    async close() {
      await writeApi.close().catch(() => undefined)
    },
  }
}

/**
 * Fail fast on settings that can never work: an empty write (no points) is authenticated and
 * addressed like a real one, so a bad token (401/403) or an unknown org or bucket (404) shows at
 * start, with exit 6, instead of at the first device message. Other answers (an unreachable
 * server, a 5xx) are left to the retries: InfluxDB may simply be starting.
 */
export async function checkInfluxWrite(settings: InfluxSettings, timeoutMs = 10_000): Promise<SinkError | undefined> {
  const {InfluxDB, HttpError} = await loadClient(() => undefined)
  const transport = new InfluxDB({url: settings.url, token: settings.token, timeout: timeoutMs}).transport
  const path = `/api/v2/write?org=${encodeURIComponent(settings.org)}&bucket=${encodeURIComponent(settings.bucket)}&precision=ns`
  try {
    await transport.request(path, '', {method: 'POST', headers: {'content-type': 'text/plain; charset=utf-8'}})
    return undefined
  } catch (error) {
    const classified = classifyInfluxError(error, settings.url, HttpError)
    return classified.permanent && [401, 403, 404].includes(classified.status ?? 0) ? classified : undefined
  }
}
