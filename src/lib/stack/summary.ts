/**
 * The `dev up` summary, pure: two samples of the stack's counters in, one line of text out.
 * The running stack samples once a second (see dev-monitor.ts); nothing here reads a clock.
 */

/** Cumulative counters and gauges of a running stack at time `at` (epoch ms). */
export interface StackSample {
  at: number
  /** Open MQTT sessions (devices and services). */
  connections: number
  /** Telemetry messages received, points committed, payloads rejected, failed write attempts. */
  messages: number
  points: number
  rejected: number
  failures: number
  /** Points accepted but not committed yet. */
  pendingPoints: number
  /** When the oldest message not committed yet was accepted (epoch ms); undefined when none waits. */
  oldestPendingAt?: number
}

export interface StackSummary {
  connections: number
  /** Messages per second between the two samples (0 without a previous one). */
  messagesPerSecond: number
  messages: number
  pendingPoints: number
  /** Age of the oldest message not committed yet, in ms (0 when nothing waits). */
  lagMs: number
  rejected: number
  failures: number
}

export function summarize(previous: StackSample | undefined, current: StackSample): StackSummary {
  const seconds = previous ? (current.at - previous.at) / 1000 : 0
  const received = previous ? current.messages - previous.messages : 0
  return {
    connections: current.connections,
    messagesPerSecond: seconds > 0 && received > 0 ? received / seconds : 0,
    messages: current.messages,
    pendingPoints: current.pendingPoints,
    lagMs: current.oldestPendingAt === undefined ? 0 : Math.max(0, current.at - current.oldestPendingAt),
    rejected: current.rejected,
    failures: current.failures,
  }
}

/** 0.4, 9.5, 152, 12034: one decimal only where it says something. */
export function formatRate(perSecond: number): string {
  return perSecond < 10 ? perSecond.toFixed(1) : String(Math.round(perSecond))
}

/** 0 ms → "0s", 250 → "0.25s", 4200 → "4.2s", 95_000 → "1m35s". */
export function formatLag(ms: number): string {
  if (ms <= 0) return '0s'
  if (ms < 1000) return `${Number((ms / 1000).toFixed(2))}s`
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`
  const minutes = Math.floor(ms / 60_000)
  return `${minutes}m${Math.floor((ms - minutes * 60_000) / 1000)}s`
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/**
 * The line rewritten in place at a terminal, cut to `columns - 1` characters so that it never
 * wraps (a wrapped line cannot be rewritten with a carriage return).
 */
export function formatLive(s: StackSummary, columns?: number): string {
  const lag = s.pendingPoints === 0 ? 'lag 0' : `lag ${plural(s.pendingPoints, 'point')} (${formatLag(s.lagMs)})`
  const line = [plural(s.connections, 'connection'), `${formatRate(s.messagesPerSecond)} msg/s`, lag,
    `${s.rejected} rejected`, plural(s.failures, 'write failure')].join(' · ')
  return columns !== undefined && columns > 1 && line.length > columns - 1 ? line.slice(0, columns - 2) + '…' : line
}

/** The periodic line in a log file (`key=value`, easy to read and to grep). */
export function formatPlain(s: StackSummary): string {
  return `summary: connections=${s.connections} msg/s=${formatRate(s.messagesPerSecond)} messages=${s.messages}` +
    ` lag_points=${s.pendingPoints} lag=${formatLag(s.lagMs)} rejected=${s.rejected} write_failures=${s.failures}`
}
