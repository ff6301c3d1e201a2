import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {freePort} from '../../src/lib/db/embedded.js'

/**
 * Debian's `victoria-metrics` as a real server for the InfluxDB sink: it serves InfluxDB's
 * `/api/v2/write` (measurement `telemetry` + field `temperature` become the metric
 * `telemetry_temperature`, tags become labels; org and bucket are ignored). What it stores is
 * coarser than what InfluxDB would: millisecond timestamps, and values as decimals of about 12
 * significant digits with one exponent per block of a series (1e308 next to 1e8 turns the
 * latter into 0). Tests compare sensor-like values; exact float64 text is checked on the line
 * protocol itself (test/unit/influx-line-protocol.test.ts). Read back through `/api/v1/export`.
 */
export interface RunningVictoriaMetrics {
  url: string
  port: number
  /** Every stored sample of the metrics matching `match` (a series selector), sorted by metric then time. */
  exportSeries(match?: string): Promise<ExportedSeries[]>
  /** Stop the server (SIGTERM, data kept). */
  stop(): Promise<void>
  /** Start it again on the same port and storage, after `stop`. */
  start(): Promise<void>
  /** Stop and delete the storage. */
  close(): Promise<void>
  log(): string
}

export interface ExportedSeries {
  metric: Record<string, string>
  values: number[]
  timestamps: number[]
}

export interface VictoriaMetricsOptions {
  /** Turn on HTTP Basic Auth: every request without these credentials gets 401. */
  basicAuth?: {username: string; password: string}
  timeoutMs?: number
}

const BINARY = 'victoria-metrics'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Start victoria-metrics on a free loopback port with its own storage. It cannot listen on port
 * 0 and tell us the port, so a port is taken from the kernel, released, and passed on; when
 * another process grabs it in between, the server exits and we retry with another port.
 * Rejects (never skips) when the binary is missing: CI installs it (.ci/run).
 */
export async function startVictoriaMetrics(options: VictoriaMetricsOptions = {}): Promise<RunningVictoriaMetrics> {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-vm-'))
  let child: ChildProcess | undefined
  let stderr = ''
  let port = 0
  const launch = async (): Promise<void> => {
    // -dedup.minScrapeInterval=1ms: one sample per series and millisecond, the last written, as
    // InfluxDB overwrites a point written again with the same series and time (VictoriaMetrics
    // would otherwise keep both, and a redelivered message would count twice).
    const args = [`-storageDataPath=${join(dir, 'data')}`, `-httpListenAddr=127.0.0.1:${port}`, '-search.latencyOffset=0s', '-loggerLevel=ERROR',
      '-dedup.minScrapeInterval=1ms',
      ...(options.basicAuth ? [`-httpAuth.username=${options.basicAuth.username}`, `-httpAuth.password=${options.basicAuth.password}`] : [])]
    const proc = spawn(BINARY, args, {stdio: ['ignore', 'pipe', 'pipe']})
    child = proc
    proc.stdout!.on('data', (d) => (stderr += d))
    proc.stderr!.on('data', (d) => (stderr += d))
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (error) => reject(new Error(`${BINARY} could not be started (is Debian's victoria-metrics installed? apt-get install victoria-metrics): ${error.message}`)))
      proc.once('exit', (code, signal) => reject(new Error(`${BINARY} exited early (code ${code}, signal ${signal}): ${stderr.slice(-2000)}`)))
    })
    failed.catch(() => undefined)
    await Promise.race([failed, waitHealthy(port, options, options.timeoutMs ?? 15_000)])
  }
  const start = async () => {
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 || port === 0) port = await freePort()
      try {
        return await launch()
      } catch (error) {
        await stopChild(child)
        const conflict = /address already in use/i.test(String((error as Error).message))
        if (!conflict || attempt >= 4) throw error
      }
    }
  }
  const restart = async () => {
    // Same port on restart: the sink keeps its URL. A conflict here is a test failure, not retried.
    await launch().catch(async (error) => {
      await stopChild(child)
      throw error
    })
  }
  await start().catch(async (error) => {
    await rm(dir, {recursive: true, force: true})
    throw error
  })
  const url = () => `http://127.0.0.1:${port}`
  return {
    get url() {
      return url()
    },
    get port() {
      return port
    },
    exportSeries: async (match = '{__name__=~"telemetry_.*"}') => {
      const headers = authHeaders(options)
      await fetch(`${url()}/internal/force_flush`, {headers}) // make the newest samples searchable now
      const response = await fetch(`${url()}/api/v1/export?${new URLSearchParams({'match[]': match})}`, {headers})
      if (!response.ok) throw new Error(`export answered ${response.status}: ${await response.text()}`)
      const series = (await response.text()).split('\n').filter(Boolean).map((line) => JSON.parse(line) as ExportedSeries)
      for (const s of series) sortSamples(s)
      return series.sort((a, b) => seriesKey(a).localeCompare(seriesKey(b)))
    },
    stop: () => stopChild(child),
    start: restart,
    close: async () => {
      await stopChild(child)
      await rm(dir, {recursive: true, force: true})
    },
    log: () => stderr,
  }
}

function authHeaders(options: VictoriaMetricsOptions): Record<string, string> {
  const a = options.basicAuth
  return a ? {authorization: `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`} : {}
}

export const seriesKey = (s: ExportedSeries) => JSON.stringify(Object.entries(s.metric).sort(([a], [b]) => a.localeCompare(b)))

function sortSamples(s: ExportedSeries): void {
  const order = s.timestamps.map((t, i) => [t, s.values[i]!] as const).sort((a, b) => a[0] - b[0])
  s.timestamps = order.map(([t]) => t)
  s.values = order.map(([, v]) => v)
}

async function waitHealthy(port: number, options: VictoriaMetricsOptions, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`, {headers: authHeaders(options)}).then((r) => r.ok, () => false)
    if (ok) return
    if (Date.now() > deadline) throw new Error(`victoria-metrics did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`)
    await sleep(100)
  }
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  await exited
}
