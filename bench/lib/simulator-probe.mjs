// Samples for bench/simulator.mjs: this process (the simulator) through process.cpuUsage() and
// memoryUsage(), its event-loop delay, and, from /proc, the stack's processes (the broker/ingest
// process and PostgreSQL with its backends) and the whole machine, to tell a saturated machine
// from a slow simulator.
import {readFile} from 'node:fs/promises'
import {monitorEventLoopDelay} from 'node:perf_hooks'

const readText = (path) => readFile(path, 'utf8').catch(() => '')
const USER_HZ_MS = 10 // USER_HZ is 100 on Linux

/** utime + stime of one process (ms), with its waited-for children's (cutime + cstime) if asked; NaN when it is gone. */
async function procCpuMs(pid, reaped = false) {
  const text = await readText(`/proc/${pid}/stat`)
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ') // fields from the 3rd on
  if (f.length < 15) return NaN
  return (Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0)) * USER_HZ_MS
}

/**
 * PostgreSQL: the postmaster, its exited children (backends that ended are reaped into its cutime)
 * and its live children.
 */
async function treeCpuMs(pid) {
  let sum = await procCpuMs(pid, true)
  for (const child of (await readText(`/proc/${pid}/task/${pid}/children`)).trim().split(/\s+/).filter(Boolean)) {
    const ms = await procCpuMs(child)
    if (Number.isFinite(ms)) sum += ms
  }
  return sum
}

async function rssKiB(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(await readText(`/proc/${pid}/status`))
  return m ? Number(m[1]) : NaN
}

async function machine() {
  const v = (await readText('/proc/stat')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  const total = v.reduce((a, b) => a + b, 0)
  return {busy: total - idle, total}
}

export async function openFilesLimit() {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(await readText('/proc/self/limits'))
  const value = (t) => (t === 'unlimited' ? Infinity : Number(t))
  return m ? {soft: value(m[1]), hard: value(m[2])} : {soft: NaN, hard: NaN}
}

export const loadAverage = async () => (await readText('/proc/loadavg')).split(' ').slice(0, 3).join(' ')

/** One sample of everything; window(a, b) turns two samples into rates and shares. */
export async function sample({stackPid, postgresPid, counters}) {
  return {
    at: performance.now(),
    cpu: process.cpuUsage(),
    mem: process.memoryUsage(),
    counters: counters ? {...counters} : undefined,
    stackCpu: stackPid ? await procCpuMs(stackPid) : NaN,
    stackRss: stackPid ? await rssKiB(stackPid) : NaN,
    pgCpu: postgresPid ? await treeCpuMs(postgresPid) : NaN,
    machine: await machine(),
  }
}

export function window(a, b) {
  const ms = b.at - a.at
  const share = (cpuMs) => cpuMs / ms // of one core
  const cpuMs = (x, y) => (y.user - x.user + y.system - x.system) / 1000
  return {
    ms,
    simulatorCpu: share(cpuMs(a.cpu, b.cpu)),
    simulatorUserCpu: share((b.cpu.user - a.cpu.user) / 1000),
    stackCpu: share(b.stackCpu - a.stackCpu),
    pgCpu: share(b.pgCpu - a.pgCpu),
    machineBusy: (b.machine.busy - a.machine.busy) / Math.max(1, b.machine.total - a.machine.total),
    rate: (key) => ((b.counters[key] - a.counters[key]) * 1000) / ms,
  }
}

/** Event-loop delay of this process (the simulator's timers fire late by this much). */
export function loopDelay() {
  const h = monitorEventLoopDelay({resolution: 10})
  h.enable()
  return {
    reset: () => h.reset(),
    read: () => ({p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6}),
    stop: () => h.disable(),
  }
}

/**
 * Why connection attempts fail, from the simulator's side: every mqtt.js client's 'error' events
 * (connect timeout, CONNACK refused, TLS or socket errors), counted by message. mqtt is the module
 * the simulator's dist code imports (one instance: the build snapshot links node_modules).
 */
export function countClientErrors(mqtt) {
  const counts = new Map()
  const proto = mqtt.MqttClient.prototype
  const emit = proto.emit
  proto.emit = function (event, ...args) {
    if (event === 'error') {
      const message = String(args[0]?.message ?? args[0]).replace(/\d+(\.\d+){3}:\d+/g, 'HOST:PORT')
      counts.set(message, (counts.get(message) ?? 0) + 1)
    }
    return emit.call(this, event, ...args)
  }
  return {
    top: (n = 4) => [...counts].sort((a, b) => b[1] - a[1]).slice(0, n),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    restore: () => void (proto.emit = emit),
  }
}

/**
 * --cpu-prof: a CPU profile of this process (the simulator) over the steady window only, through
 * the inspector, written to DIR; summarize() groups its self time by function and by package.
 */
export async function windowProfiler(dir) {
  if (!dir) return {start: async () => undefined, stop: async () => undefined}
  const {Session} = await import('node:inspector/promises')
  const {mkdir, writeFile} = await import('node:fs/promises')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', {interval: 500})
  return {
    start: () => session.post('Profiler.start'),
    stop: async (name) => {
      const {profile} = await session.post('Profiler.stop')
      session.disconnect()
      await mkdir(dir, {recursive: true})
      const file = `${dir}/${name}.cpuprofile`
      await writeFile(file, JSON.stringify(profile))
      return {file, ...summarize(profile)}
    },
  }
}

function summarize(profile) {
  const self = new Map(profile.nodes.map((n) => [n.id, 0]))
  for (let i = 0; i < profile.samples.length; i++) self.set(profile.samples[i], self.get(profile.samples[i]) + (profile.timeDeltas[i] ?? 0))
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const byFunction = new Map()
  const byPackage = new Map()
  for (const n of profile.nodes) {
    const us = self.get(n.id)
    if (!us) continue
    const {functionName, url, lineNumber} = n.callFrame
    const pkg = !url ? `(${functionName || 'native'})` : url.includes('/node_modules/') ? url.split('/node_modules/').pop().split('/').slice(0, url.includes('/node_modules/@') ? 2 : 1).join('/')
      : url.startsWith('node:') ? url : url.includes('/dist/') ? `iotctl ${url.split('/dist/').pop()}` : url
    const fn = `${functionName || '(anonymous)'} ${pkg}${url ? `:${lineNumber + 1}` : ''}`
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `${k} ${((us / total) * 100).toFixed(1)} %`)
  return {totalMs: total / 1000, functions: top(byFunction, 12), packages: top(byPackage, 10)}
}
