import {createHash} from 'node:crypto'
import {invalidInput} from '../core/errors.js'

/**
 * Pure planning: option grammars, the canary order and stage boundaries. The SQL that fixes a
 * rollout's targets orders by the same hash (rollout/store.ts), and a unit test holds them equal.
 */

/** "1,10,100" → [1, 10, 100]: strictly increasing percentages, the last one 100. */
export function parseStages(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim().replace(/%$/, ''))
  // Whole percentages: the stages are stored as integers.
  const stages = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : Number.NaN))
  const bad = () => invalidInput('E_STAGES', `--stages ${JSON.stringify(text)} is not a list of increasing whole percentages ending at 100`, {hint: 'e.g. --stages 1,10,100'})
  if (parts.some((p) => p === '') || stages.some((s) => !Number.isFinite(s) || s <= 0 || s > 100)) throw bad()
  if (stages.some((s, i) => i > 0 && s <= stages[i - 1]!) || stages.at(-1) !== 100 || stages.length > 20) throw bad()
  return stages
}

/** "5%" or "5" → 0.05. A rate of 0 would abort on the first failure: allowed, it is explicit. */
export function parsePercent(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim())
  const value = match ? Number(match[1]) : Number.NaN
  if (!(value >= 0 && value <= 100)) throw invalidInput('E_PERCENT', `${flag} ${JSON.stringify(text)} is not a percentage from 0 to 100`, {hint: `e.g. ${flag} 5%`})
  return value / 100
}

/** "100/min", "5/s", "30/h", "unlimited" → dispatches per minute, fractions kept (undefined: unlimited). */
export function parseRate(text: string): number | undefined {
  if (text.trim() === 'unlimited') return undefined
  const match = /^(\d+(?:\.\d+)?)\s*\/\s*(s|sec|second|m|min|minute|h|hour)$/.exec(text.trim())
  const perUnit = match ? Number(match[1]) : Number.NaN
  if (!(perUnit > 0)) throw invalidInput('E_RATE', `--rate ${JSON.stringify(text)} is not a rate`, {hint: 'e.g. --rate 100/min, 5/s, or unlimited'})
  const unit = match![2]!
  const perMinute = unit.startsWith('s') ? perUnit * 60 : unit.startsWith('h') ? perUnit / 60 : perUnit
  return perMinute
}

/** The stable hash that orders a rollout's targets: canaries are the first positions. */
export function canaryRank(rollout: string, deviceId: string): string {
  return createHash('sha256').update(`${rollout}/${deviceId}`).digest('hex')
}

/** Targets in dispatch order: devices named by --canary-selector first, then by canaryRank. */
export function orderTargets(rollout: string, ids: string[], canaries: ReadonlySet<string> = new Set()): string[] {
  const rank = new Map(ids.map((id) => [id, canaryRank(rollout, id)]))
  return [...ids].sort((a, b) => Number(canaries.has(b)) - Number(canaries.has(a)) || (rank.get(a)! < rank.get(b)! ? -1 : rank.get(a)! > rank.get(b)! ? 1 : 0))
}

/**
 * Cumulative target counts at the end of each stage. Every stage holds at least one device more
 * than the one before while devices remain (a 1% canary of 50 devices is one device, not zero);
 * named canaries make the first stage exactly their number.
 */
export function stageBoundaries(total: number, stages: readonly number[], canaryCount?: number): number[] {
  const bounds: number[] = []
  for (const [i, percent] of stages.entries()) {
    let end = i === 0 && canaryCount !== undefined && canaryCount > 0 ? canaryCount : Math.ceil((total * percent) / 100)
    const previous = bounds.at(-1) ?? 0
    if (end <= previous && previous < total) end = previous + 1
    bounds.push(Math.max(previous, Math.min(total, end)))
  }
  bounds[bounds.length - 1] = total
  return bounds
}

/** The stage (0-based) of the target at `position` (0-based) given the boundaries. */
export function stageOf(position: number, bounds: readonly number[]): number {
  const index = bounds.findIndex((end) => position < end)
  return index === -1 ? bounds.length - 1 : index
}

export type HealthCheck =
  | {kind: 'metric'; metric: string; op: '<' | '<=' | '>' | '>='; limit: number; text: string}
  | {kind: 'status'; status: 'online'; text: string}

/** `--health 'temperature<80,status=online'`: what an updated device must keep showing during the soak. */
export function parseHealth(text: string): HealthCheck[] {
  return text.split(',').map((s) => s.trim()).filter(Boolean).map((item) => {
    if (/^status\s*=\s*online$/.test(item)) return {kind: 'status', status: 'online', text: item}
    const match = /^([A-Za-z0-9_.-]{1,64})\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)$/.exec(item)
    if (!match) {
      throw invalidInput('E_HEALTH', `--health ${JSON.stringify(item)} is not a check`, {hint: "metric<number, metric>=number or status=online, comma-separated: 'temperature<80,status=online'"})
    }
    return {kind: 'metric', metric: match[1]!, op: match[2] as '<', limit: Number(match[3]), text: item}
  })
}
