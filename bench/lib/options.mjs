// Tiny argv parser for benchmarks: `--name value`, `--name=value`, bare `--flag` (true),
// `--no-flag` (false). Dashes in names become camelCase (`--list-runs` → listRuns).

export class UsageError extends Error {}

const camel = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase())

export function parseArgs(argv) {
  const options = {_: []}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (!arg.startsWith('--')) {
      options._.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    if (eq > 0) {
      options[camel(arg.slice(2, eq))] = arg.slice(eq + 1)
    } else if (arg.startsWith('--no-')) {
      options[camel(arg.slice(5))] = false
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      options[camel(arg.slice(2))] = argv[++i]
    } else {
      options[camel(arg.slice(2))] = true
    }
  }
  return options
}

/** A positive integer written as 1000000, 1,000,000, 1_000_000, 100k or 1m. */
export function parseCount(value, name) {
  if (typeof value === 'number') return value
  const text = String(value).trim().toLowerCase().replace(/[,_]/g, '')
  const match = /^(\d+(?:\.\d+)?)([km]?)$/.exec(text)
  const n = match ? Math.round(Number(match[1]) * (match[2] === 'k' ? 1e3 : match[2] === 'm' ? 1e6 : 1)) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer (e.g. 100000, 100k, 1m), got ${JSON.stringify(value)}`)
  return n
}
