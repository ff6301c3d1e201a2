// Instruments of the shadow benchmark: statement and transaction times of a pg pool, pool
// saturation, CPU time per process from /proc, and a CPU profiler (node:inspector) with a summary
// of where the samples fell. Used in the benchmark's process and in its load-generator child.
import {readFileSync, readdirSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {Session} from 'node:inspector/promises'
import {cpus} from 'node:os'

/** Epoch milliseconds with sub-millisecond precision; comparable across processes on one machine. */
export const now = () => performance.timeOrigin + performance.now()

/** Nearest-rank p50 / p99 / max of a list (ms). */
export function dist(values) {
  const v = Float64Array.from(values).sort()
  const at = (p) => v[Math.max(1, Math.ceil((p / 100) * v.length)) - 1]
  return v.length === 0 ? {n: 0, p50: NaN, p99: NaN, max: NaN, mean: NaN} : {n: v.length, p50: at(50), p99: at(99), max: v[v.length - 1], mean: v.reduce((a, b) => a + b, 0) / v.length}
}

/** A statement's label: its first words, whitespace collapsed, parameters left as $n. */
const labelOf = (sql) => {
  const s = sql.replace(/\s+/g, ' ').trim()
  if (/^SELECT pg_notify/.test(s)) return 'SELECT pg_notify(…) (NOTIFY)'
  return s.length > 72 ? `${s.slice(0, 72)}…` : s
}

/**
 * Time every statement of every client the pool hands out (both `pool.query` and transactions via
 * `pool.connect()`), per statement label; BEGIN → COMMIT/ROLLBACK as transactions; and sample
 * the pool's waiting count (callers queued for a connection) every 5 ms.
 */
export function instrumentPool(pool) {
  let kinds = new Map()
  let tx = []
  let waitSamples = 0
  let waitSum = 0
  let waitMax = 0
  const record = (sql, ms) => {
    const label = labelOf(sql)
    const k = kinds.get(label) ?? {n: 0, ms: 0, max: 0}
    k.n++
    k.ms += ms
    if (ms > k.max) k.max = ms
    kinds.set(label, k)
  }
  const wrap = (client) => {
    if (client.__benchWrapped) return
    client.__benchWrapped = true
    const query = client.query.bind(client)
    client.query = (config, values, callback) => {
      const sql = typeof config === 'string' ? config : config?.text ?? ''
      const t = now()
      const done = () => {
        const end = now()
        record(sql, end - t)
        if (sql === 'BEGIN') client.__benchTx = t
        else if ((sql === 'COMMIT' || sql === 'ROLLBACK') && client.__benchTx) {
          tx.push(end - client.__benchTx)
          client.__benchTx = 0
        }
      }
      if (typeof values === 'function') return query(config, (e, r) => (done(), values(e, r)))
      if (typeof callback === 'function') return query(config, values, (e, r) => (done(), callback(e, r)))
      const result = query(config, values)
      if (result && typeof result.then === 'function') return result.finally(done)
      return result
    }
  }
  pool.on('connect', wrap)
  const sampler = setInterval(() => {
    waitSamples++
    waitSum += pool.waitingCount
    if (pool.waitingCount > waitMax) waitMax = pool.waitingCount
  }, 5)
  sampler.unref()
  return {
    reset() {
      kinds = new Map()
      tx = []
      waitSamples = waitSum = waitMax = 0
    },
    /** Statements by total time, transactions, pool queue. */
    take() {
      const statements = [...kinds.entries()].map(([label, k]) => ({label, ...k})).sort((a, b) => b.ms - a.ms)
      return {statements, tx: dist(tx), txMs: tx.reduce((a, b) => a + b, 0), waiting: {mean: waitSamples ? waitSum / waitSamples : 0, max: waitMax}, size: pool.options.max}
    },
    stop: () => clearInterval(sampler),
  }
}

const CLK_TCK = 100 // getconf CLK_TCK on Linux x86-64

function procCpuMs(pid, withChildren = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0)) * 1000) / CLK_TCK
  } catch {
    return 0
  }
}

function childPids(ppid) {
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

function machineBusyMs() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = v[3] + (v[4] ?? 0)
  return ((v.slice(0, 8).reduce((a, b) => a + b, 0) - idle) * 1000) / CLK_TCK
}

/** CPU ms of named processes (this one, children by pid, PostgreSQL with its backends) between two snapshots. */
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
    },
    take() {
      const u = process.cpuUsage()
      const snap = {at: now(), machine: machineBusyMs(), 'broker process': (u.user + u.system) / 1000}
      for (const [name, pid] of Object.entries(pids)) snap[name] = procCpuMs(pid)
      if (pgPid) snap.PostgreSQL = procCpuMs(pgPid, true) + childPids(pgPid).reduce((s, p) => s + procCpuMs(p), 0)
      return snap
    },
    /** CPU ms per process between two snapshots, and the whole machine's busy ms. */
    parts(a, b) {
      const out = {}
      for (const k of Object.keys(b)) if (k !== 'at' && k !== 'machine') out[k] = b[k] - (a[k] ?? 0)
      return {parts: out, ours: Object.values(out).reduce((x, y) => x + y, 0), machine: b.machine - a.machine, wall: b.at - a.at}
    },
    /** "name 0.62, … cores" over the interval, plus the whole machine and the share of other processes. */
    line(a, b) {
      const wall = b.at - a.at
      const keys = Object.keys(b).filter((k) => k !== 'at' && k !== 'machine')
      const ours = keys.reduce((sum, k) => sum + b[k] - (a[k] ?? 0), 0)
      const busy = b.machine - a.machine
      const parts = keys.map((k) => `${k} ${((b[k] - (a[k] ?? 0)) / wall).toFixed(2)}`)
      return `${parts.join(', ')} cores; whole machine ${(busy / wall).toFixed(2)} of ${cpus().length} cores busy, ` +
        `${(Math.max(0, busy - ours) / wall).toFixed(2)} of them by OTHER processes, over ${(wall / 1000).toFixed(1)} s`
    },
  }
}

/** Which part of the system a profile node's script belongs to. */
function bucketOf(url, name) {
  if (!url) return name.startsWith('(') ? name : '(native / V8 builtins)'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = url.slice(nm + 14).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  const d = url.indexOf('/dist/lib/')
  if (d >= 0) return `iotctl dist/lib/${url.slice(d + 10).split('/')[0]}`
  if (url.includes('/bench/')) return 'bench (load generator / probes)'
  const m = /^node:(?:internal\/)?([a-z_]+)/.exec(url)
  return m ? `node:${m[1]}` : url
}

/**
 * Start sampling this process's CPU. `stop(file?)` ends it, writes the .cpuprofile (open it in
 * Chrome DevTools or speedscope) when given a file, and returns the top buckets and functions by
 * self time.
 */
export async function startProfile({intervalUs = 500} = {}) {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', {interval: intervalUs})
  await session.post('Profiler.start')
  return async (file) => {
    const {profile} = await session.post('Profiler.stop')
    await session.post('Profiler.disable')
    session.disconnect()
    if (file) await writeFile(file, JSON.stringify(profile))
    return summarizeProfile(profile)
  }
}

export function summarizeProfile(profile, top = 12) {
  const self = new Map()
  const {samples, timeDeltas} = profile
  for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (timeDeltas[i + 1] ?? 0) / 1000)
  const buckets = new Map()
  const functions = new Map()
  let total = 0
  for (const node of profile.nodes) {
    const ms = self.get(node.id) ?? 0
    if (!ms) continue
    const {functionName, url, lineNumber} = node.callFrame
    const name = functionName || '(anonymous)'
    const bucket = bucketOf(url, name)
    total += ms
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + ms)
    const key = `${name} ${url ? `${url.replace(/^.*\/(node_modules|dist|bench)\//, '$1/')}:${lineNumber + 1}` : ''}`.trim()
    functions.set(key, (functions.get(key) ?? 0) + ms)
  }
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, ms]) => ({name, ms, share: ms / total}))
  return {totalMs: total, buckets: sorted(buckets), functions: sorted(functions)}
}
