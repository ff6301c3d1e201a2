import {createWriteStream} from 'node:fs'
import {readFile, rename, rm, writeFile} from 'node:fs/promises'
import {formatLive, formatPlain, summarize, type StackSample} from './summary.js'

export type LogLine = (line: string) => void

/** The line a person watches at a terminal, rewritten in place; other lines are printed above it. */
export interface LiveLine {
  show(text: string): void
  /** Print something else: the live line is cleared first and drawn again after it. */
  around(print: () => void): void
  clear(): void
}

const CLEAR_LINE = '\r\u001B[2K'

export function liveLine(write: (text: string) => void): LiveLine {
  let shown: string | undefined
  return {
    show(text) {
      shown = text
      write(CLEAR_LINE + text)
    },
    around(print) {
      if (shown !== undefined) write(CLEAR_LINE)
      print()
      if (shown !== undefined) write(shown)
    },
    clear() {
      if (shown !== undefined) write(CLEAR_LINE)
      shown = undefined
    },
  }
}

export interface LogSink {
  /** To the file, and echoed. */
  log: LogLine
  /** To the file only. */
  file: LogLine
  close(): Promise<void>
}

/**
 * A service's log file: each line with an ISO timestamp, appended. `echo` (a foreground `dev up`)
 * also gets the line, prefixed with the service's name. Lines after close() are echoed only.
 */
export function logSink(file: string, service: string, echo?: LogLine): LogSink {
  const stream = createWriteStream(file, {flags: 'a', mode: 0o600})
  let open = true
  stream.on('error', (error) => {
    open = false
    echo?.(`[${service}] cannot write ${file}: ${error.message}`)
  })
  const toFile = (line: string) => {
    if (open) stream.write(`${new Date().toISOString()} ${line}\n`)
  }
  return {
    log(line) {
      toFile(line)
      echo?.(`[${service}] ${line}`)
    },
    file: toFile,
    close: () => new Promise((resolve) => {
      if (!open) return resolve()
      open = false
      stream.end(resolve)
    }),
  }
}

/** What the stack writes to the heartbeat file every second; `dev status` reads it. */
export interface Heartbeat {
  pid: number
  at: string
  connections: number
  ingest: {messages: number; points: number; rejected: number; failures: number; pending_points: number; lag_ms: number}
}

export async function readHeartbeat(file: string): Promise<Heartbeat | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Heartbeat
  } catch {
    return undefined
  }
}

export interface MonitorOptions {
  sample: () => StackSample
  heartbeatFile: string
  /** The stack's log: a plain summary line every `everyMs` (0: none), and a last one at stop (to `last`, else here). */
  log: LogLine
  last?: LogLine
  everyMs: number
  /** At a terminal: one line rewritten in place every `tickMs`. */
  live?: {line: LiveLine; columns?: () => number | undefined}
  tickMs?: number
}

export interface Monitor {
  stop(): Promise<void>
}

/** Sample the stack every second: heartbeat file, live line, periodic summary line. */
export async function startMonitor(options: MonitorOptions): Promise<Monitor> {
  const tickMs = options.tickMs ?? 1000
  let previous = options.sample()
  let lastPlain = previous
  let writing: Promise<void> | undefined
  const beat = (sample: StackSample) => {
    if (writing) return writing // a slow disk: skip a beat rather than queue them
    writing = writeHeartbeat(options.heartbeatFile, sample).catch(() => undefined).finally(() => (writing = undefined))
    return writing
  }
  await beat(previous)
  const timer = setInterval(() => {
    const current = options.sample()
    void beat(current)
    options.live?.line.show(formatLive(summarize(previous, current), options.live.columns?.()))
    if (options.everyMs > 0 && current.at - lastPlain.at >= options.everyMs - tickMs / 2) {
      options.log(formatPlain(summarize(lastPlain, current)))
      lastPlain = current
    }
    previous = current
  }, tickMs)
  timer.unref()
  return {
    async stop() {
      clearInterval(timer)
      options.live?.line.clear()
      if (options.everyMs > 0) (options.last ?? options.log)(formatPlain(summarize(lastPlain, options.sample())))
      await writing
      await rm(options.heartbeatFile, {force: true})
    },
  }
}

async function writeHeartbeat(file: string, sample: StackSample): Promise<void> {
  const {lagMs} = summarize(undefined, sample)
  const heartbeat: Heartbeat = {
    pid: process.pid,
    at: new Date(sample.at).toISOString(),
    connections: sample.connections,
    ingest: {messages: sample.messages, points: sample.points, rejected: sample.rejected, failures: sample.failures,
      pending_points: sample.pendingPoints, lag_ms: lagMs},
  }
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify(heartbeat) + '\n', {mode: 0o600})
  await rename(tmp, file)
}
