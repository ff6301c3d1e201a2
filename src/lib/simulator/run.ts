import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {Database} from '../db/pool.js'
import type {FleetCounters} from './device.js'
import {startFleet, type FleetSummary} from './fleet.js'
import type {MetricSpec} from './metrics.js'
import {loadTrustedFirmwareKey} from './ota-trust.js'
import {prepareSimulation} from './prepare.js'

export interface SimulationOptions {
  db: Database
  caDir: string
  passphrase: string
  deviceUrl: string
  count: number
  prefix: string
  type: string
  firmware?: string
  register: boolean
  intervalMs: number
  metrics: MetricSpec[]
  anomalyRate: number
  qos: 0 | 1
  /** The firmware signing public key the devices trust (PEM file); a missing file: every assignment is refused. */
  firmwareKeyFile: string
  otaFailureRate: number
  otaHangRate: number
  /** Stop after this long; else only `signal` stops it. */
  durationMs?: number
  signal: AbortSignal
  /** Called every `progressMs` with the counters (for a live line on stderr). */
  onProgress?: (counters: FleetCounters, elapsedMs: number) => void
  progressMs?: number
  log: (line: string) => void
}

/** `iotctl simulate`: prepare identities, run the fleet until the duration or a signal, summarise. */
export async function runSimulation(options: SimulationOptions): Promise<FleetSummary & {registered: number}> {
  const trusted = await loadTrustedFirmwareKey(options.firmwareKeyFile)
  if (!trusted) options.log(`no firmware signing key is trusted (${options.firmwareKeyFile} does not exist): every firmware assignment will be refused with bad-signature`)
  const plan = await prepareSimulation(options.db, options)
  const root = await readFile(join(options.caDir, 'root.crt'), 'utf8')
  const trust = root + (await readFile(join(options.caDir, 'service-ca.crt'), 'utf8'))
  const started = Date.now()
  const fleet = await startFleet({url: options.deviceUrl, trust, devices: plan.devices, intervalMs: options.intervalMs, metrics: options.metrics,
    anomalyRate: options.anomalyRate, qos: options.qos, log: options.log,
    // Artifact downloads trust the root alone: the artifact server presents its certificate with the service CA.
    ota: {trustedKey: trusted?.key, ca: root, failureRate: options.otaFailureRate, hangRate: options.otaHangRate}})
  const progress = options.onProgress && setInterval(() => options.onProgress!(fleet.counters, Date.now() - started), options.progressMs ?? 5000)
  await new Promise<void>((resolve) => {
    if (options.signal.aborted) return resolve()
    options.signal.addEventListener('abort', () => resolve(), {once: true})
    if (options.durationMs !== undefined) setTimeout(resolve, options.durationMs).unref()
  })
  clearInterval(progress)
  return {...(await fleet.stop()), registered: plan.registered}
}
