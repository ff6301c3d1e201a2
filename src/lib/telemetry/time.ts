import {invalidInput} from '../core/errors.js'

/** Pure time helpers for telemetry queries and retention: durations, time bounds, bucket alignment. */

export const SECOND = 1000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE
export const DAY = 24 * HOUR
const UNITS: Record<string, number> = {s: SECOND, m: MINUTE, h: HOUR, d: DAY, w: 7 * DAY}
const DURATION = /^(\d{1,9})(s|m|h|d|w)$/
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/** "90s", "5m", "24h", "7d", "2w" → milliseconds; undefined when the text is not such a duration. */
export function durationMs(text: string): number | undefined {
  const match = DURATION.exec(text.trim())
  if (!match) return undefined
  const ms = Number(match[1]) * UNITS[match[2]!]!
  return ms > 0 ? ms : undefined
}

/** The shortest exact spelling of a duration: 86400000 → "1d", 5400000 → "90m". */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', DAY], ['h', HOUR], ['m', MINUTE], ['s', SECOND]] as const) {
    if (ms % size === 0 && ms >= size) return `${ms / size}${unit}`
  }
  return `${ms}ms`
}

/** An RFC 3339 timestamp ("2026-11-24T10:00:00Z", "…+01:00") → epoch ms; undefined otherwise (also for 2026-02-30). */
export function rfc3339Ms(text: string): number | undefined {
  const m = RFC3339.exec(text.trim())
  if (!m) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const probe = new Date(Date.UTC(year, month - 1, day, hour, minute, second))
  if (probe.getUTCMonth() !== month - 1 || probe.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) return undefined
  const ms = Date.parse(text.trim().toUpperCase())
  return Number.isNaN(ms) ? undefined : ms
}

/**
 * A --since / --until value: a duration means that long before `now` ("24h"), anything that is an
 * RFC 3339 time is that instant; everything else is exit 4.
 */
export function parseTimeBound(text: string, flag: string, now: number): number {
  const ago = durationMs(text)
  if (ago !== undefined) return now - ago
  const at = rfc3339Ms(text)
  if (at !== undefined) return at
  throw invalidInput('E_TIME', `${flag} ${JSON.stringify(text)} is neither a duration nor an RFC 3339 time`, {
    hint: `use a duration before now (${flag} 24h, 7d, 90m) or a time such as 2026-11-24T10:00:00Z`,
  })
}

/** Start of the bucket of width `every` (aligned to the Unix epoch, i.e. UTC) that holds `ms`. */
export const floorTo = (ms: number, every: number) => Math.floor(ms / every) * every
export const ceilTo = (ms: number, every: number) => Math.ceil(ms / every) * every

export const iso = (ms: number) => new Date(ms).toISOString()
