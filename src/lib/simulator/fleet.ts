import type {TlsIdentity} from '../mqtt/client.js'
import {newCounters, VirtualDevice, type FleetCounters} from './device.js'
import {MetricWalk, type MetricSpec} from './metrics.js'
import {OtaFleet, type OtaOptions} from './ota.js'

export interface FleetOptions {
  /** The broker's device listener, e.g. mqtts://127.0.0.1:8883. */
  url: string
  /** PEM the devices trust to verify the broker. */
  trust: string
  /** Each device's identity; `type` and `firmware` (the version it starts running) matter to OTA. */
  devices: Array<{id: string; cert: string; key: string; type?: string; firmware?: string}>
  intervalMs: number
  metrics: MetricSpec[]
  anomalyRate: number
  qos: 0 | 1
  backoff?: {baseMs: number; capMs: number}
  /** New connections per second while starting (the broker's token bucket allows 500/s by default). */
  startRate?: number
  onAttempt?: (deviceId: string, at: number) => void
  /** Devices act on firmware assignments (docs/PROTOCOL.md "Firmware updates (OTA)"); without it they ignore them. */
  ota?: OtaOptions
  log: (line: string) => void
}

export interface FleetSummary {
  devices: number
  connected: number
  sent: number
  acknowledged: number
  reconnects: number
  errors: number
  deltas_applied: number
  commands_acked: number
  anomalies: number
  ota_installs: number
  ota_failures: number
  ota_refusals: number
  ota_rollbacks: number
  ota_hangs: number
  duration_s: number
}

export interface RunningFleet {
  readonly counters: FleetCounters
  /** Per-device sequence numbers sent so far (the next seq of each device). */
  sequences(): Map<string, number>
  /** OTA: completed installs per `device@version`, and the version each device runs now (empty without OTA). */
  installs(): Map<string, number>
  firmware(): Map<string, string>
  stop(): Promise<FleetSummary>
}

/**
 * Start a fleet of virtual devices: connections paced at `startRate`, telemetry of device i sent
 * at i/N of the interval (counted from the fleet's start, whenever the device itself started) so
 * the fleet's load is even, not bursts.
 */
export async function startFleet(options: FleetOptions): Promise<RunningFleet> {
  const counters = newCounters()
  const started = Date.now()
  const n = options.devices.length
  const ota = options.ota && new OtaFleet(options.ota, counters, options.log)
  const devices = options.devices.map((d, i) => new VirtualDevice({
    id: d.id, url: options.url, tls: {cert: d.cert, key: d.key, ca: options.trust} satisfies TlsIdentity,
    intervalMs: options.intervalMs, offsetMs: Math.floor((i / n) * options.intervalMs), epochMs: started, walk: new MetricWalk(options.metrics, options.anomalyRate),
    qos: options.qos, backoff: options.backoff ?? {baseMs: 1000, capMs: 60_000}, counters, onAttempt: options.onAttempt,
    ota: ota?.device({id: d.id, type: d.type ?? 'sensor', firmware: d.firmware}), log: options.log,
  }))
  const rate = options.startRate ?? 400
  const batch = Math.max(1, Math.ceil(rate / 10))
  for (let i = 0; i < devices.length; i += batch) {
    const t = Date.now()
    await Promise.all(devices.slice(i, i + batch).map((d) => d.start()))
    const wait = 100 - (Date.now() - t)
    if (i + batch < devices.length && wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  return {
    counters,
    sequences: () => new Map(options.devices.map((d, i) => [d.id, devices[i]!.sequence])),
    installs: () => new Map(ota?.installs ?? []),
    firmware: () => ota?.firmware() ?? new Map(),
    stop: async () => {
      const connected = counters.connected
      await Promise.all(devices.map((d) => d.stop()))
      return {
        devices: n, connected, sent: counters.sent, acknowledged: counters.acknowledged, reconnects: counters.reconnects, errors: counters.errors,
        deltas_applied: counters.deltasApplied, commands_acked: counters.commandsAcked, anomalies: counters.anomalies,
        ota_installs: counters.otaInstalls, ota_failures: counters.otaFailures, ota_refusals: counters.otaRefusals, ota_rollbacks: counters.otaRollbacks, ota_hangs: counters.otaHangs,
        duration_s: Math.round((Date.now() - started) / 100) / 10,
      }
    },
  }
}
