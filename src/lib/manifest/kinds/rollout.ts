import {conflict} from '../../core/errors.js'
import {parseDuration} from '../../core/duration.js'
import {parseSelector} from '../../core/selector.js'
import {parseHealth, parsePercent, parseRate, parseStages, ROLLOUT_DEFAULTS, type RolloutRecord} from '../../rollout/index.js'
import {API_VERSION, type KindHandler, type ManifestDocument, type ManifestObject, type Zod} from '../types.js'

/** What `rollout create` takes, as a manifest (durations and percentages as on the command line). */
export interface RolloutObjectSpec {
  /** The name of a Firmware object. */
  firmware: string
  selector?: string
  canarySelector?: string
  stages?: number[]
  soak?: string
  maxFailureRate?: string
  minDecided?: number
  minCoverage?: string
  rate?: string
  stepTimeout?: string
  health?: string
  rollback?: boolean
  start?: boolean
}

/** The rollout row as `rollout status` reads it, with its Firmware's name instead of its id. */
export type RolloutLive = Pick<RolloutRecord, 'name' | 'selector' | 'canary_selector' | 'stages' | 'soak_ms' | 'max_failure_rate' | 'min_decided'
  | 'min_coverage' | 'rate_per_minute' | 'step_timeout_ms' | 'health' | 'rollback' | 'state'> & {firmware: string}

const spec = (z: Zod) => z.strictObject({
  firmware: z.string().min(1).describe('name of the Firmware object to roll out'),
  selector: z.string().optional().describe('device selector within the firmware\'s device type'),
  canarySelector: z.string().optional().describe('the first stage\'s devices (else a stable hash picks them)'),
  stages: z.array(z.number().int().positive().max(100)).min(1).max(20).optional().describe('cumulative percentages, ending at 100 (default [1, 10, 100])'),
  soak: z.string().optional().describe('soak per stage, e.g. 1h (default 1h)'),
  maxFailureRate: z.string().optional().describe('abort threshold, e.g. 5% (default 5%)'),
  minDecided: z.number().int().min(1).optional().describe('decided targets before the threshold applies (default 10)'),
  minCoverage: z.string().optional().describe('share of a stage that must have answered before it advances (default 90%)'),
  rate: z.string().optional().describe('dispatches per minute: 100/min, 5/s, or unlimited (default)'),
  stepTimeout: z.string().optional().describe('silence after which a device is timed-out (default 30m)'),
  health: z.string().optional().describe("checks during the soak, e.g. 'temperature<80,status=online'"),
  rollback: z.boolean().optional().describe('on abort, send updated devices back'),
  start: z.boolean().optional().describe('start it (a pending rollout starts when this becomes true)'),
})

const UNITS: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']]
const formatMs = (ms: number) => {
  const [size, unit] = UNITS.find(([n]) => ms % n === 0 && ms >= n) ?? [1, 'ms']
  return `${ms / size}${unit}`
}
const formatPercent = (fraction: number) => `${Number((fraction * 100).toFixed(4))}%`
const formatRate = (perMinute: number | null) => (perMinute === null ? 'unlimited' : `${Number(perMinute.toFixed(6))}/min`)

/** The file's spec with defaults, normalised as the database stores it (or undefined fields when invalid: check() says why). */
function normalise(s: RolloutObjectSpec) {
  return {
    firmware: s.firmware, selector: s.selector ?? null, canary_selector: s.canarySelector ?? null, stages: s.stages ?? parseStages(ROLLOUT_DEFAULTS.stages),
    soak_ms: parseDuration(s.soak ?? ROLLOUT_DEFAULTS.soak, 'spec.soak'), max_failure_rate: parsePercent(s.maxFailureRate ?? ROLLOUT_DEFAULTS.maxFailureRate, 'spec.maxFailureRate'),
    min_decided: s.minDecided ?? ROLLOUT_DEFAULTS.minDecided, min_coverage: parsePercent(s.minCoverage ?? ROLLOUT_DEFAULTS.minCoverage, 'spec.minCoverage'),
    rate_per_minute: parseRate(s.rate ?? ROLLOUT_DEFAULTS.rate) ?? null, step_timeout_ms: parseDuration(s.stepTimeout ?? ROLLOUT_DEFAULTS.stepTimeout, 'spec.stepTimeout'),
    health: s.health ?? null, rollback: Boolean(s.rollback),
  }
}

function document(name: string, l: Omit<RolloutLive, 'name' | 'state'> & {started: boolean}): ManifestDocument {
  return {apiVersion: API_VERSION, kind: 'Rollout', metadata: {name}, spec: {
    firmware: l.firmware, ...(l.selector ? {selector: l.selector} : {}), ...(l.canary_selector ? {canarySelector: l.canary_selector} : {}),
    stages: l.stages, soak: formatMs(l.soak_ms), maxFailureRate: formatPercent(l.max_failure_rate), minDecided: l.min_decided,
    minCoverage: formatPercent(l.min_coverage), rate: formatRate(l.rate_per_minute), stepTimeout: formatMs(l.step_timeout_ms),
    ...(l.health ? {health: l.health} : {}), rollback: l.rollback, start: l.started,
  }}
}

const problem = (at: string[], error: unknown) => ({at, path: at.join('.'), message: (error as Error).message ?? String(error)})

/**
 * A staged OTA rollout (`rollout create`). Once created it is immutable, except that a pending one
 * starts when `start` becomes true; the controller drives it after the commit.
 */
export const rolloutKind: KindHandler<RolloutObjectSpec, RolloutLive> = {
  kind: 'Rollout',
  resource: 'rollout',
  aliases: ['rollouts', 'ro'],
  order: 40,
  spec,
  check(object) {
    const s = object.spec
    const checks: Array<[string[], () => unknown]> = [
      [['spec', 'stages'], () => s.stages && parseStages(s.stages.join(','))],
      [['spec', 'soak'], () => s.soak && parseDuration(s.soak, 'spec.soak')],
      [['spec', 'stepTimeout'], () => {
        if (s.stepTimeout && parseDuration(s.stepTimeout, 'spec.stepTimeout') < 1000) throw new Error('expected at least 1s')
      }],
      [['spec', 'maxFailureRate'], () => s.maxFailureRate && parsePercent(s.maxFailureRate, 'spec.maxFailureRate')],
      [['spec', 'minCoverage'], () => s.minCoverage && parsePercent(s.minCoverage, 'spec.minCoverage')],
      [['spec', 'rate'], () => s.rate && parseRate(s.rate)],
      [['spec', 'selector'], () => s.selector && parseSelector(s.selector)],
      [['spec', 'canarySelector'], () => s.canarySelector && parseSelector(s.canarySelector)],
      [['spec', 'health'], () => s.health && parseHealth(s.health)],
    ]
    const problems = []
    for (const [at, run] of checks) {
      try {
        run()
      } catch (error) {
        problems.push(problem(at, error))
      }
    }
    if (Object.keys(object.labels).length > 0) problems.push({at: ['metadata', 'labels'], path: 'metadata.labels', message: 'Rollout has no labels; remove them'})
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(object.name)) problems.push({at: ['metadata', 'name'], path: 'metadata.name', message: 'expected at most 63 characters'})
    return problems
  },
  references: (object) => [{kind: 'Firmware', name: object.spec.firmware, at: ['spec', 'firmware']}],
  async loadLive(q, names) {
    const {rows} = await q.query<RolloutLive>(`SELECT r.name, f.name AS firmware, r.selector, r.canary_selector, r.stages, r.soak_ms::float8 AS soak_ms,
        r.max_failure_rate, r.min_decided, r.min_coverage, r.rate_per_minute, r.step_timeout_ms::float8 AS step_timeout_ms, r.health, r.rollback, r.state
      FROM rollouts r JOIN firmware f USING (firmware_id) WHERE r.name = ANY($1::text[])`, [names])
    return new Map(rows.map((r) => [r.name, r]))
  },
  async listNames(q) {
    return (await q.query<{name: string}>('SELECT name FROM rollouts ORDER BY name')).rows.map((r) => r.name)
  },
  exportLive: (live) => document(live.name, {...live, started: live.state !== 'pending'}),
  canonical: (object) => document(object.name, {...normalise(object.spec), started: Boolean(object.spec.start)}),
  async apply(client, entries) {
    const {insertRollout, startRolloutIn} = await import('../../rollout/index.js')
    for (const e of entries.filter((x) => x.specChanged)) {
      const o = e.object as ManifestObject<RolloutObjectSpec>
      const n = normalise(o.spec)
      if (e.live) {
        const startOnly = e.live.state === 'pending' && o.spec.start === true &&
          JSON.stringify(document(o.name, {...n, started: true})) === JSON.stringify(document(o.name, {...e.live, started: true}))
        if (!startOnly) {
          throw conflict('E_ROLLOUT_IMMUTABLE', `rollout/${o.name} exists (${e.live.state}) with other settings; a rollout cannot be changed once created`, {
            hint: 'create a new rollout under a new name; a pending one can only be started (start: true)',
          })
        }
        await startRolloutIn(client, o.name)
        continue
      }
      const {rows} = await client.query<{firmware_id: number; device_type: string; version: string}>('SELECT firmware_id::int, device_type, version FROM firmware WHERE name = $1', [n.firmware])
      const f = rows[0]!
      await insertRollout(client, {name: o.name, firmware: `${f.device_type}@${f.version}`, selector: n.selector ?? undefined, canarySelector: n.canary_selector ?? undefined,
        stages: n.stages, soakMs: n.soak_ms, maxFailureRate: n.max_failure_rate, minDecided: n.min_decided, minCoverage: n.min_coverage,
        ratePerMinute: n.rate_per_minute ?? undefined, stepTimeoutMs: n.step_timeout_ms, health: n.health ?? undefined, rollback: n.rollback}, f.firmware_id, {start: Boolean(o.spec.start)})
    }
  },
  async delete(client, entries) {
    const active = entries.filter((e) => e.live && ['running', 'soaking', 'paused'].includes(e.live.state))
    if (active.length > 0) {
      throw conflict('E_ROLLOUT_ACTIVE', `rollout/${active[0]!.name} is ${active[0]!.live!.state}; nothing was changed`, {hint: `abort it first: iotctl rollout abort ${active[0]!.name}`})
    }
    await client.query('DELETE FROM rollouts WHERE name = ANY($1::text[])', [entries.map((e) => e.name)])
  },
}
