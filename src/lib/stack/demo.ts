import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {Database} from '../db/pool.js'
import {loadPublicKey} from '../firmware/index.js'
import {isFinal, listRollouts, rolloutStatus, type RolloutStatus} from '../rollout/index.js'
import {DEFAULT_METRICS, parseMetrics, prepareSimulation, startFleet, type RunningFleet} from '../simulator/index.js'
import type {RunningStack} from './dev-up.js'

export const DEMO_DEVICES = {prefix: 'demo-', count: 200, type: 'thermostat'}

export interface DemoOptions {
  home: string
  manifestsDir: string
  /** Give up after this long (the demo normally finishes in about a minute). */
  timeoutMs: number
  startStack: () => Promise<RunningStack>
  openDatabase: (url: string) => Promise<Database & {close: () => Promise<void>}>
  /** Apply the demo's manifests in one transaction (the manifest issue's `apply`); returns kubectl-style lines. */
  apply: (db: Database, dir: string) => Promise<string[]>
  /** Progress for a person (stderr): `live` rewrites one line at a terminal, `line` appends one. */
  progress: {line: (text: string) => void; live?: (text: string) => void}
  signal: AbortSignal
}

export interface DemoSnapshot {
  elapsed_s: number
  devices: {total: number; online: number}
  telemetry: {acknowledged: number; per_second: number}
  shadows: {converged: number; total: number}
  rollouts: Array<Pick<RolloutStatus, 'name' | 'firmware' | 'state' | 'stage' | 'stages' | 'failure_rate' | 'reason'> & {succeeded: number; failed: number; in_flight: number}>
}

export interface DemoResult extends DemoSnapshot {
  success: boolean
  outcome: 'completed' | 'timed-out' | 'interrupted'
  checks: Record<string, boolean>
  explore: string[]
}

const EXPLORE = [
  'iotctl devices list --selector site=berlin',
  'iotctl rollout list',
  'iotctl rollout status fw-110-berlin',
  'iotctl rollout status fw-120-paris',
  'iotctl telemetry query --device demo-0000 --metric temperature --since 10m --every 1m --plot',
  'iotctl shadow get demo-0150',
  'iotctl get rollouts -o yaml',
]

/**
 * `dev up --demo`: the embedded stack, the demo manifests applied in one transaction, 200 simulated
 * thermostats (mutual TLS, telemetry, shadows, OTA), watched live until the good rollout completed,
 * the bad one aborted itself, and every shadow converged — or the timeout, or Ctrl-C.
 */
export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const started = Date.now()
  const stack = await o.startStack()
  let db: (Database & {close: () => Promise<void>}) | undefined
  let fleet: RunningFleet | undefined
  try {
    db = await o.openDatabase(stack.record.databaseUrl)
    o.progress.line(`applying ${o.manifestsDir}`)
    for (const line of await o.apply(db, o.manifestsDir)) o.progress.line(`  ${line}`)
    fleet = await startDemoFleet(db, o.home, stack)
    o.progress.line(`${DEMO_DEVICES.count} simulated thermostats connecting over mutual TLS`)
    const outcome = await watch(o, db, fleet, started)
    const last = await snapshot(db, fleet, started, 0)
    const checks = {
      'every device online': last.devices.online === last.devices.total,
      'telemetry stored': last.telemetry.acknowledged > 0,
      'every shadow converged': last.shadows.converged === last.shadows.total,
      'good rollout completed': last.rollouts.some((r) => r.name === 'fw-110-berlin' && r.state === 'completed'),
      'bad rollout aborted in its canary': last.rollouts.some((r) => r.name === 'fw-120-paris' && (r.state === 'aborted' || r.state === 'rolled-back') && r.stage === 1),
    }
    return {...last, success: outcome === 'completed' && Object.values(checks).every(Boolean), outcome, checks, explore: EXPLORE}
  } finally {
    await fleet?.stop().catch(() => undefined)
    await db?.close().catch(() => undefined)
    await stack.stop('demo finished')
  }
}

async function startDemoFleet(db: Database, home: string, stack: RunningStack): Promise<RunningFleet> {
  const caDir = stack.record.broker!.caDir
  const passphrase = process.env.IOTCTL_CA_PASSPHRASE ?? (await readFile(join(caDir, 'dev-passphrase'), 'utf8')).trim()
  const plan = await prepareSimulation(db, {caDir, passphrase, prefix: DEMO_DEVICES.prefix, count: DEMO_DEVICES.count, type: DEMO_DEVICES.type, register: false})
  const root = await readFile(join(caDir, 'root.crt'), 'utf8')
  const trust = root + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
  const {key} = await loadPublicKey(join(home, 'keys'))
  return startFleet({url: `mqtts://127.0.0.1:${stack.record.broker!.devicePort}`, trust, devices: plan.devices, intervalMs: 2000,
    metrics: parseMetrics(DEFAULT_METRICS), anomalyRate: 0, qos: 1, log: () => undefined,
    ota: {trustedKey: key, ca: root, failureRate: 0, hangRate: 0, installMs: 300, rebootMs: 300}})
}

async function watch(o: DemoOptions, db: Database, fleet: RunningFleet, started: number): Promise<DemoResult['outcome']> {
  let lastAcknowledged = 0
  let lastPrinted = 0
  for (;;) {
    if (o.signal.aborted) return 'interrupted'
    const s = await snapshot(db, fleet, started, lastAcknowledged)
    lastAcknowledged = s.telemetry.acknowledged
    const line = describe(s)
    if (o.progress.live) o.progress.live(line)
    else if (Date.now() - lastPrinted >= 5000) {
      o.progress.line(line)
      lastPrinted = Date.now()
    }
    const done = s.rollouts.length >= 2 && s.rollouts.every((r) => isFinal(r.state)) && s.shadows.converged === s.shadows.total && s.devices.online === s.devices.total
    if (done) return 'completed'
    if (Date.now() - started > o.timeoutMs) return 'timed-out'
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }
}

async function snapshot(db: Database, fleet: RunningFleet, started: number, lastAcknowledged: number): Promise<DemoSnapshot> {
  const like = `${DEMO_DEVICES.prefix}%`
  const {rows} = await db.pool.query<{total: number; online: number; converged: number; shadows: number}>(`SELECT
      (SELECT count(*)::int FROM devices WHERE device_id LIKE $1) AS total,
      (SELECT count(*)::int FROM devices WHERE device_id LIKE $1 AND status = 'active' AND last_seen_at IS NOT NULL) AS online,
      (SELECT count(*)::int FROM shadows WHERE device_id LIKE $1) AS shadows,
      (SELECT count(*)::int FROM shadows WHERE device_id LIKE $1 AND coalesce(document->'state'->'delta', '{}'::jsonb) = '{}'::jsonb) AS converged`, [like])
  const counts = rows[0]!
  const rollouts = await Promise.all((await listRollouts(db)).map((r) => rolloutStatus(db, r.name)))
  const acknowledged = fleet.counters.acknowledged
  return {
    elapsed_s: Math.round((Date.now() - started) / 1000),
    devices: {total: counts.total, online: counts.online},
    telemetry: {acknowledged, per_second: acknowledged - lastAcknowledged},
    shadows: {converged: counts.converged, total: counts.total},
    rollouts: rollouts.sort((a, b) => a.name.localeCompare(b.name)).map((r) => ({name: r.name, firmware: r.firmware, state: r.state, stage: r.stage, stages: r.stages, failure_rate: r.failure_rate, reason: r.reason,
      succeeded: r.counts.succeeded, failed: r.counts.failed + r.counts['timed-out'], in_flight: r.counts.dispatched + r.counts.downloading + r.counts.installing})),
  }
}

/** One line: devices online, telemetry rate, shadow convergence, each rollout's stage and counts. */
export function describe(s: DemoSnapshot): string {
  const rollouts = s.rollouts.map((r) => `${r.name} ${r.state} ${r.stage}/${r.stages.length} ✓${r.succeeded} ✗${r.failed}`).join(' · ')
  return `${s.elapsed_s}s · ${s.devices.online}/${s.devices.total} online · ${s.telemetry.per_second} msg/s · shadows ${s.shadows.converged}/${s.shadows.total} converged · ${rollouts}`
}
