// Part (a) of the shadow benchmark: round trips of N connected devices, measured by the load
// generator (shadow-load.mjs) and broken down with the broker process's timestamps (shadow-trace.mjs).
import {cpus, loadavg} from 'node:os'
import {monitorEventLoopDelay} from 'node:perf_hooks'
import {join} from 'node:path'
import {dist} from './shadow-probe.mjs'
import {fmtCount, fmtRate, fmtUp} from './stats.mjs'

export const WARMUP_MS = 1000 // excluded from the sustained rate: the ramp of a closed-loop run

const ms0 = (v) => (Number.isNaN(v) ? '–' : fmtUp(v, 0))
const ms1 = (v) => (Number.isNaN(v) ? '–' : fmtUp(v, 1))
export const latLine = (s) => (s.n === 0 ? 'none recorded' : `p50 ${ms1(s.p50)} ms · p99 ${ms1(s.p99)} ms · max ${ms0(s.max)} ms (n = ${fmtCount(s.n)})`)

/** Everything a run's records say: completions, errors, rates, latency, stages. */
export function analyze(result, trace) {
  const r = result.records
  const n = r.k.length
  const done = []
  const errors = new Map()
  for (let i = 0; i < n; i++) {
    if (r.error[i]) errors.set(r.error[i].replace(/\d+/g, 'N'), (errors.get(r.error[i].replace(/\d+/g, 'N')) ?? 0) + 1)
    else if (r.tAcc[i]) done.push(i)
  }
  const {start, end} = result
  // Completions per whole second of the run, and in the steady window (after the first second).
  const seconds = new Array(Math.max(1, Math.floor((end - start) / 1000))).fill(0)
  let steady = 0
  let last = 0
  for (const i of done) {
    const at = r.tAcc[i]
    if (at > last) last = at
    const s = Math.floor((at - start) / 1000)
    if (s >= 0 && s < seconds.length) seconds[s]++
    if (at >= start + WARMUP_MS && at <= end) steady++
  }
  const steadyRate = steady / ((end - start - WARMUP_MS) / 1000)
  const steadySeconds = seconds.length > 1 ? seconds.slice(1) : seconds
  const perSecond = {...dist(steadySeconds), min: Math.min(...steadySeconds)}
  const latency = dist(done.map((i) => r.tAcc[i] - r.t0[i]))
  const lag = dist(r.k.map((_, i) => r.t0[i] - r.scheduled[i]))
  // Stages (ms): each from the previous event; the server-side ones need the trace's timestamps.
  const stage = {set: [], notify: [], service: [], committed: [], delivery: [], report: [], updateTx: [], answer: [], device: []}
  const ids = result.ids
  let traced = 0
  for (const i of done) {
    const k = r.k[i]
    stage.set.push(r.tCommit[i] - r.t0[i])
    if (!trace) continue
    const tNotify = trace.notifyAfter(ids[r.d[i]], r.t0[i])
    const tPub = trace.data.deltaPub.get(k)
    const tIn = trace.data.updIn.get(k)
    const tAccPub = trace.data.accPub.get(k)
    if (!tPub || !tIn || !tAccPub) continue
    traced++
    if (tNotify) {
      stage.notify.push(tNotify - r.t0[i])
      stage.service.push(tPub - tNotify)
    } else {
      stage.committed.push(tPub - r.tCommit[i])
    }
    stage.delivery.push(r.tDelta[i] - tPub)
    stage.report.push(tIn - r.tDelta[i])
    stage.updateTx.push(tAccPub - tIn)
    stage.answer.push(r.tAcc[i] - tAccPub)
  }
  return {n, completed: done.length, errors, steadyRate, perSecond, latency, lag, traced, stages: Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, dist(v)])), last}
}

export const STAGE_LABELS = {
  set: 'setDesired() call → its COMMIT returned (operator side)',
  notify: 'setDesired() call → NOTIFY at a 2nd listener (broker process)',
  service: 'NOTIFY → the sync service publishes the delta',
  committed: 'COMMIT returned → the sync service publishes the delta',
  delivery: 'delta publish call → delta at the device',
  report: 'delta at the device → its report at the sync service',
  updateTx: 'report at the sync service → it publishes update/accepted',
  answer: 'update/accepted publish call → at the device',
}

/**
 * Run one measured round-trip run and print it. Returns the analysis.
 * ctx: {report, load, trace, cpu, stackProbe, profileDir, mode, devices}
 */
export async function roundTripRun(ctx, {label, rate, inFlight, durationMs}) {
  const {report, load, trace, cpu, stackProbe} = ctx
  const loop = monitorEventLoopDelay({resolution: 10})
  trace?.reset()
  stackProbe.reset()
  const cpu0 = cpu.take()
  if (ctx.profileDir) await Promise.all([ctx.profileStart(), load.profileStart()])
  loop.enable()
  const result = await load.run({rate, inFlight, durationMs})
  loop.disable()
  const cpu1 = cpu.take()
  let profiles
  if (ctx.profileDir) {
    const tag = label.replace(/[^a-z0-9]+/gi, '-').toLowerCase()
    const files = [join(ctx.profileDir, `${tag}-broker.cpuprofile`), join(ctx.profileDir, `${tag}-load.cpuprofile`)]
    profiles = {broker: await ctx.profileStop(files[0]), load: await load.profileStop(files[1]), files}
  }
  const a = analyze(result, trace)
  const stack = stackProbe.take()
  const c = result.counters
  report.line(label, `(load average ${loadavg()[0].toFixed(2)} at the end) ${fmtCount(a.completed)} of ${fmtCount(a.n)} round trips completed${a.errors.size ? `, ${fmtCount(a.n - a.completed)} failed` : ', none failed'}; ` +
    `issuing stopped after ${(durationMs / 1000).toFixed(0)} s, the last answer came ${fmtCount(Math.round(a.last - result.end))} ms later`)
  report.line('  sustained rate', `${fmtRate(a.steadyRate)} round trips/s completed between second 1 and ${(durationMs / 1000).toFixed(0)}; ` +
    `completions per whole second after the first: min ${fmtCount(a.perSecond.min)}, median ${fmtCount(a.perSecond.p50)}, max ${fmtCount(a.perSecond.max)}`)
  report.line('  round trip', latLine(a.latency))
  if (rate) report.line('  schedule', `start lag behind the open-loop schedule ${latLine(a.lag)}`)
  for (const [message, count] of a.errors) report.line('  errors', `${fmtCount(count)} × ${message}`)
  report.line('  device side', `duplicate deltas ignored ${c.duplicateDeltas}, stray deltas ${c.strayDeltas}, stray accepted ${c.strayAccepted}, ` +
    `cleared deltas received ${fmtCount(c.clears)}, rejected ${c.rejected}, connections closed ${c.closes}`)
  report.line('  breakdown (p50 / p99, ms)', `of ${fmtCount(a.traced)} traced round trips:`)
  for (const [key, text] of Object.entries(STAGE_LABELS)) {
    const s = a.stages[key]
    if (s.n) report.line(`    ${text}`.padEnd(30), `${ms1(s.p50)} / ${ms1(s.p99)} (max ${ms0(s.max)})`)
  }
  if (trace) {
    const t = trace.data
    const reads = stack.statements.find((k) => k.label.startsWith('SELECT device_id, document FROM shadows WHERE device_id = ANY'))
    const wall = result.end - result.start + (a.last > result.end ? a.last - result.end : 0)
    report.line('  sync service', `${fmtCount(t.deltas)} deltas published (${fmtCount(t.clears)} of them clears), ${fmtCount(t.notifyCount)} NOTIFYs seen by the 2nd listener; ` +
      `Σ publish call → broker's callback ${fmtCount(Math.round(t.publishMs))} ms, Σ delta reads (shadowsOf) ${fmtCount(Math.round(reads?.ms ?? 0))} ms in ${fmtCount(reads?.n ?? 0)} queries: ` +
      `a one-at-a-time delta queue would be busy ${Math.round((100 * (t.publishMs + (reads?.ms ?? 0))) / wall)} % of the ${fmtCount(Math.round(wall))} ms`)
  }
  poolLines(report, 'broker-process pool', stack, result.durationMs)
  poolLines(report, 'operator pool (setDesired)', result.pool, result.durationMs)
  report.line('  CPU', cpu.line(cpu0, cpu1))
  const used = cpu.parts(cpu0, cpu1)
  if (a.completed > 0) {
    const per = (ms) => (ms / a.completed).toFixed(2)
    const total = used.ours / a.completed
    report.line('  CPU per round trip', `${Object.entries(used.parts).map(([k, ms]) => `${k} ${per(ms)} ms`).join(', ')}; ` +
      `total ${total.toFixed(2)} ms → at most ${fmtRate((cpus().length * 1000) / total)} round trips/s if these processes had all ${cpus().length} cores to themselves`)
  }
  report.line('  event loops', `broker process p50 ${ms1(loop.percentile(50) / 1e6)} · p99 ${ms1(loop.percentile(99) / 1e6)} · max ${ms0(loop.max / 1e6)} ms; ` +
    `load generator p50 ${ms1(result.eventLoop.p50)} · p99 ${ms1(result.eventLoop.p99)} · max ${ms0(result.eventLoop.max)} ms`)
  if (profiles) {
    for (const [who, p] of [['broker process', profiles.broker], ['load generator', profiles.load]]) {
      report.line(`  CPU profile, ${who}`, p.buckets.slice(0, 8).map((b) => `${b.name} ${Math.round(b.share * 100)} %`).join(', '))
      report.line('', `    top functions (self): ${p.functions.slice(0, 6).map((f) => `${f.name} ${Math.round(f.share * 100)} %`).join('; ')}`)
    }
    report.line('  profiles', profiles.files.join('  '))
  }
  return {...a, result, stack}
}

/** Statement time per label of an instrumented pool, top few, and its saturation. */
export function poolLines(report, name, p, wallMs) {
  const total = p.statements.reduce((s, k) => s + k.ms, 0)
  report.line(`  ${name}`, `max ${p.size} connections, callers waiting for one: mean ${p.waiting.mean.toFixed(1)}, max ${p.waiting.max}; ` +
    `${fmtCount(p.tx.n)} transactions (p50 ${ms1(p.tx.p50)} ms, p99 ${ms1(p.tx.p99)} ms); Σ statement time ${fmtCount(Math.round(total))} ms in ${fmtCount(Math.round(wallMs))} ms`)
  for (const k of p.statements.slice(0, 8)) {
    report.line('', `      ${fmtCount(k.n).padStart(8)} × ${(k.ms / k.n).toFixed(2).padStart(6)} ms avg (max ${ms0(k.max)})  ${k.label}`)
  }
}
