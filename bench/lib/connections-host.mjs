// Host limits that decide whether N connections can be held at all: open files (each process holds
// one socket per connection: the bench process the client ends, the broker child the server ends,
// and the child inherits the limit), the ephemeral port range (every client connects from 127.0.0.1
// to one port, so each needs its own source port) and the listen backlog. Also the machine's CPU
// counters, to tell a saturated machine from a slow broker.
import {readFile} from 'node:fs/promises'

const readText = (path) => readFile(path, 'utf8').catch(() => '')
const limitValue = (text) => (text === 'unlimited' ? Infinity : Number(text))

export async function hostLimits() {
  const limits = await readText('/proc/self/limits')
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
  const [lo, hi] = (await readText('/proc/sys/net/ipv4/ip_local_port_range')).trim().split(/\s+/).map(Number)
  return {
    nofileSoft: m ? limitValue(m[1]) : NaN,
    nofileHard: m ? limitValue(m[2]) : NaN,
    ephemeralPorts: Number.isFinite(hi - lo) ? hi - lo + 1 : NaN,
    portRange: Number.isFinite(hi - lo) ? `${lo}–${hi}` : 'unknown',
    somaxconn: Number((await readText('/proc/sys/net/core/somaxconn')).trim()) || NaN,
  }
}

/** Problems that make `count` connections impossible (errors) or doubtful (warnings). */
export function checkLimits(limits, count) {
  const errors = []
  const warnings = []
  const needFiles = count + 256 // sockets plus node's own fds, the pg pool, the CA files
  if (!(limits.nofileSoft >= needFiles)) {
    errors.push(`ulimit -n (open files) is ${limits.nofileSoft}: each of the two processes needs one socket per connection, ` +
      `${needFiles} or more for --count ${count}. Raise it first (\`ulimit -n ${Math.max(65_536, needFiles)}\`; hard limit ${limits.nofileHard}) or lower --count.`)
  }
  if (!(limits.ephemeralPorts >= count + 1000)) {
    warnings.push(`only ${limits.ephemeralPorts} ephemeral ports (${limits.portRange}) for ${count} connections from one address; ` +
      'widen net.ipv4.ip_local_port_range if connects fail with EADDRNOTAVAIL.')
  }
  return {errors, warnings}
}

/** Machine-wide CPU jiffies from /proc/stat: {busy, total}. busyShare(a, b) is the busy fraction between two reads. */
export async function cpuTimes() {
  const line = (await readText('/proc/stat')).split('\n')[0]
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  const total = v.reduce((a, b) => a + b, 0)
  return {busy: total - idle, total}
}

export const busyShare = (a, b) => (b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : NaN)

/**
 * CPU time (ms) of one PostgreSQL instance: the postmaster (with its exited children) and its
 * live children (the backends), from /proc. NaN when the postmaster cannot be found.
 */
export async function postgresCpuMs(dataDir) {
  const pid = Number((await readText(`${dataDir}/postmaster.pid`)).split('\n')[0])
  if (!pid) return NaN
  const ticks = (text) => text.slice(text.lastIndexOf(')') + 2).split(' ') // fields from the 3rd on
  const main = ticks(await readText(`/proc/${pid}/stat`))
  if (main.length < 20) return NaN
  let sum = Number(main[11]) + Number(main[12]) + Number(main[13]) + Number(main[14]) // utime stime cutime cstime
  const children = (await readText(`/proc/${pid}/task/${pid}/children`)).trim().split(/\s+/).filter(Boolean)
  for (const child of children) {
    const f = ticks(await readText(`/proc/${child}/stat`))
    if (f.length > 12) sum += Number(f[11]) + Number(f[12])
  }
  return sum * 10 // USER_HZ is 100 on Linux
}
