// Measuring instruments of the ingest benchmark: publish → commit latency, CPU time per process
// (from /proc), and where the ingest's database transactions spend their time.
import {readFileSync, readdirSync} from 'node:fs'
import {now, sentOf} from './ingest-load.mjs'

/** Per-message times (ms) in a preallocated array, plus the time of the last event. */
export class Recorder {
  constructor(capacity) {
    this.values = new Float64Array(capacity)
    this.reset()
  }

  reset() {
    this.n = 0
    this.last = 0
  }

  /** One message done now, published at `sent`. */
  record(sent) {
    const t = now()
    if (this.n < this.values.length) this.values[this.n] = t - sent
    this.n++
    if (t > this.last) this.last = t
  }

  /** p50 / p99 / max (nearest rank) of what was recorded. */
  summary() {
    const v = this.values.slice(0, Math.min(this.n, this.values.length)).sort()
    const at = (p) => v[Math.max(1, Math.ceil((p / 100) * v.length)) - 1]
    return v.length === 0 ? {n: 0, p50: NaN, p99: NaN, max: NaN} : {n: v.length, p50: at(50), p99: at(99), max: v[v.length - 1]}
  }
}

/** `handle(topic, payload)` that records commit time − publish time when `inner` resolves. */
export function timedHandle(inner, recorder) {
  return (topic, payload) => {
    const sent = sentOf(payload)
    return inner(topic, payload).then(() => recorder.record(sent))
  }
}

const CLK_TCK = 100 // getconf CLK_TCK on Linux x86-64

/** utime + stime (+ children's, when `children`) of a process, in ms; 0 when it is gone. */
function procCpuMs(pid, children = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // fields from #3 (state) on
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0)
    return (ticks * 1000) / CLK_TCK
  } catch {
    return 0
  }
}

function childrenOf(ppid) {
  const out = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(name))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

/** Busy and total jiffies of the whole machine (all CPUs), from /proc/stat. */
function machine() {
  const [cpu] = readFileSync('/proc/stat', 'utf8').split('\n')
  const v = cpu.trim().split(/\s+/).slice(1).map(Number)
  const idle = v[3] + (v[4] ?? 0)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0)
  return {busyMs: ((total - idle) * 1000) / CLK_TCK, totalMs: (total * 1000) / CLK_TCK}
}

/**
 * CPU time of the processes that take part: this process (benchmark, broker or ingest, maybe the
 * publishers), the publisher child, mosquitto, and PostgreSQL (postmaster with its reaped children,
 * plus live backends). `take()` returns a snapshot; `delta(a, b)` the ms spent between two.
 */
export function cpuMeter({pgDataDir}) {
  let pgPid
  try {
    pgPid = Number(readFileSync(`${pgDataDir}/postmaster.pid`, 'utf8').split('\n')[0])
  } catch {
    pgPid = undefined
  }
  const pids = {}
  return {
    watch(name, pid) {
      if (pid && pid !== process.pid) pids[name] = pid
      else delete pids[name]
    },
    take() {
      const u = process.cpuUsage()
      const snap = {at: now(), machine: machine(), bench: (u.user + u.system) / 1000}
      for (const [name, pid] of Object.entries(pids)) snap[name] = procCpuMs(pid)
      if (pgPid) snap.postgres = procCpuMs(pgPid, true) + childrenOf(pgPid).reduce((s, p) => s + procCpuMs(p), 0)
      return snap
    },
    delta(a, b) {
      const wallMs = b.at - a.at
      const parts = {}
      for (const key of Object.keys(b)) if (key !== 'at' && key !== 'machine') parts[key] = b[key] - (a[key] ?? 0)
      const ours = Object.values(parts).reduce((s, x) => s + x, 0)
      const busy = b.machine.busyMs - a.machine.busyMs
      return {wallMs, parts, ours, machineBusy: busy, others: Math.max(0, busy - ours)}
    },
  }
}

/**
 * Time the ingest's transactions by wrapping pool.connect() of ITS pool: connect wait, BEGIN, the
 * write statement(s), COMMIT, and the whole transaction (connect → release). The ingest writes one
 * batch at a time, so Σ transaction time ÷ wall time is how busy its writer was.
 */
export function instrumentPool(pool) {
  const stats = {}
  const reset = () => Object.assign(stats, {tx: 0, txMs: 0, connectMs: 0, beginMs: 0, writeMs: 0, commitMs: 0, otherMs: 0, maxTxMs: 0})
  reset()
  const connect = pool.connect.bind(pool)
  const wrapped = new WeakSet()
  pool.connect = async (...args) => {
    if (args.length > 0) return connect(...args)
    const t0 = now()
    const client = await connect()
    stats.connectMs += now() - t0
    if (!wrapped.has(client)) {
      wrapped.add(client)
      const query = client.query.bind(client)
      client.query = (text, ...rest) => {
        const sql = typeof text === 'string' ? text : text?.text ?? ''
        const t = now()
        const result = query(text, ...rest)
        if (typeof result?.then !== 'function') return result
        return result.finally(() => {
          const ms = now() - t
          if (sql === 'BEGIN') stats.beginMs += ms
          else if (sql === 'COMMIT') {
            stats.commitMs += ms
            stats.tx++
            const tx = now() - client.__benchTx
            stats.txMs += tx
            if (tx > stats.maxTxMs) stats.maxTxMs = tx
          } else if (sql.startsWith('WITH inserted')) stats.writeMs += ms
          else stats.otherMs += ms
        })
      }
    }
    client.__benchTx = t0
    return client
  }
  return {stats, reset}
}
