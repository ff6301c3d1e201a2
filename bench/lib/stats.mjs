// Percentiles and number formatting. Figures shown next to a goal are rounded AGAINST the goal
// (never towards it), so a miss is never displayed as a pass.

/** Nearest-rank percentile (p in 0..100) of a list of numbers. */
export function percentile(values, p) {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]
}

export const median = (values) => percentile(values, 50)

export function summary(values) {
  return {n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), min: Math.min(...values), max: Math.max(...values)}
}

/** Milliseconds since `start` (a process.hrtime.bigint()). */
export const msSince = (start) => Number(process.hrtime.bigint() - start) / 1e6

const group = (n) => n.toLocaleString('en-US')

/** Higher is better (rates): round down. */
export const fmtRate = (perSecond) => group(Math.floor(perSecond))

/** Lower is better (times, ratios): round up, `digits` decimals. */
export function fmtUp(value, digits = 1) {
  const f = 10 ** digits
  return (Math.ceil(value * f - 1e-9) / f).toFixed(digits)
}

export const fmtMs = (ms, digits = 1) => `${fmtUp(ms, digits)} ms`
export const fmtS = (ms) => `${fmtUp(ms / 1000, 2)} s`
export const fmtMiB = (kib) => `${fmtUp(kib / 1024, 0)} MiB`
export const fmtCount = group
