// Simulator benchmark: `iotctl simulate`'s fleet (prepareSimulation + startFleet from dist/, the code
// the command runs) with 10,000 devices, each over mutual TLS with its own certificate, at 1 message/s
// each. The broker, the ingest and PostgreSQL run in the real dev stack (`iotctl dev up --detach`),
// in processes of their own, so the CPU and memory measured here (process.cpuUsage/memoryUsage over
// a steady window) are the simulator's alone. Reported: devices connected, ramp time (the broker's
// connect token bucket allows 500/s; the fleet paces itself at 400/s), messages/s sent and
// acknowledged against the target, simulator CPU and RSS, event-loop delay, and the stack's side
// (ingest rows/s, its CPU and PostgreSQL's), plus the machine's load to tell where the limit is.
// Uses the built project (dist/): run `npm run build` first.
import {readFile} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join} from 'node:path'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import {parseCount, UsageError} from './lib/options.mjs'
import {Report, shellLine} from './lib/report.mjs'
import {countClientErrors, loadAverage, loopDelay, openFilesLimit, sample, window, windowProfiler} from './lib/simulator-probe.mjs'
import {startStack} from './lib/simulator-stack.mjs'
import {fmtCount, fmtRate, fmtS, fmtUp} from './lib/stats.mjs'

export const description = '10,000 simulated devices at 1 message/s: ramp, messages/s achieved, simulator CPU and RSS (needs npm run build)'
export const usage = `node bench/run.mjs simulator [--count N] [--interval-ms N] [--window S] [--settle S] [--start-rate N]
                             [--ramp-timeout S] [--qos 0|1] [--cpu-prof DIR] [--quick] [--strict]

  --count N          simulated devices, each with its own certificate and TLS connection (default 10,000)
  --interval-ms N    telemetry interval per device (default 1000: the target is N messages/s)
  --window S         the steady window measured after every device connected (default 30)
  --settle S         wait after the last connection before the window starts (default 5; then also until at
                     most half a second of messages is unacknowledged, for up to 60 s)
  --start-rate N     connections per second while the fleet starts (default 400, as \`simulate\`;
                     the dev stack's broker refuses more than 500/s with CONNACK 3)
  --ramp-timeout S   give up waiting for every connection after S seconds and measure what is there (default 300)
  --qos 0|1          telemetry QoS (default 1, as \`simulate\`)
  --cpu-prof DIR     write a CPU profile of the simulator over the steady window to DIR and print where its time goes
  --quick            1,000 devices, a 10 s window (a smoke run; never publish its figures)
  --strict           exit 1 when a goal is missed`

const ISSUE_COUNT = 10_000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (share) => `${fmtUp(share * 100, 0)} %`
const MiB = (bytes) => `${fmtUp(bytes / 1024 / 1024, 0)} MiB`
const log = (line) => process.stderr.write(`  ${line}\n`)

function parseOptions(options) {
  const quick = options.quick === true
  const num = (name, flag, fallback) => (options[name] === undefined ? fallback : parseCount(options[name], flag))
  const qos = options.qos === undefined ? 1 : Number(options.qos)
  if (qos !== 0 && qos !== 1) throw new UsageError(`--qos takes 0 or 1, got ${JSON.stringify(options.qos)}`)
  return {
    count: num('count', 'count', quick ? 1000 : ISSUE_COUNT),
    intervalMs: num('intervalMs', 'interval-ms', 1000),
    windowS: num('window', 'window', quick ? 10 : 30),
    settleS: options.settle === undefined ? 5 : Number(options.settle),
    startRate: num('startRate', 'start-rate', 400),
    rampTimeoutS: num('rampTimeout', 'ramp-timeout', 300),
    qos,
    cpuProfDir: typeof options.cpuProf === 'string' ? options.cpuProf : undefined,
    quick,
    strict: options.strict === true,
  }
}

const reproduce = (o) => shellLine(['npm', 'run', 'bench', '--', 'simulator', '--count', String(o.count), '--interval-ms', String(o.intervalMs),
  '--window', String(o.windowS), '--start-rate', String(o.startRate), '--qos', String(o.qos)])

/** global.gc without --expose-gc on the command line, for memory baselines that are not garbage. */
function collectGarbage() {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  gc()
}

export async function run(options) {
  const o = parseOptions(options)
  const report = new Report()
  const target = (o.count * 1000) / o.intervalMs
  report.heading(`iotctl simulate: ${fmtCount(o.count)} devices at ${fmtUp(1000 / o.intervalMs, 2)} message/s each (QoS ${o.qos}); the dev stack in its own processes`)
  const files = await openFilesLimit()
  report.line('ulimit -n (open files)', `soft ${files.soft}, hard ${files.hard} (each side needs one socket per device)`)
  if (!(files.soft >= o.count + 512)) {
    report.line(`ERROR: ulimit -n is ${files.soft}; ${o.count + 512} or more are needed for --count ${o.count}. Raise it (\`ulimit -n ${Math.max(65_536, o.count + 512)}\`) or lower --count.`)
    return 1
  }
  report.line('machine', `${availableParallelism()} cores; load average ${await loadAverage()} before the run`)

  const stack = await startStack({log})
  let fleet
  let stopped
  try {
    report.line('dev stack (broker + ingest + shadow, PostgreSQL)', `up in ${fmtS(stack.upMs)}; pid ${stack.record.pid}, PostgreSQL pid ${stack.record.postgresPid ?? '?'}, devices on 127.0.0.1:${stack.record.broker.devicePort}`)
    const [{createPool}, sim, {default: mqtt}] = await Promise.all([import(join(stack.dist, 'lib', 'db', 'pool.js')),
      import(join(stack.dist, 'lib', 'simulator', 'index.js')), import('mqtt')])
    const clientErrors = countClientErrors(mqtt)

    // What `simulate --register` does before the fleet starts: register, then one certificate each.
    const pool = await createPool(stack.record.databaseUrl, {max: 4})
    const prepStart = performance.now()
    let plan
    try {
      plan = await sim.prepareSimulation({pool, url: stack.record.databaseUrl}, {caDir: stack.caDir, passphrase: stack.passphrase, prefix: 'sim-', count: o.count, type: 'sensor', register: true})
    } finally {
      await pool.end()
    }
    const prepMs = performance.now() - prepStart
    report.line('register + issue certificates', `${fmtCount(plan.registered)} registered, ${fmtCount(plan.devices.length)} certificates in ${fmtS(prepMs)} (${fmtRate(plan.devices.length / (prepMs / 1000))}/s)`)
    const trust = (await readFile(join(stack.caDir, 'root.crt'), 'utf8')) + (await readFile(join(stack.caDir, 'service-ca.crt'), 'utf8'))

    collectGarbage()
    const memBefore = process.memoryUsage()
    const loop = loopDelay()
    let attempts = 0
    const pids = {stackPid: stack.record.pid, postgresPid: stack.record.postgresPid}
    const rampA = await sample(pids)
    const startedAt = performance.now()
    const progress = async () => {
      const {ingest} = await stack.status()
      log(`${fmtS(performance.now() - startedAt)}: ${fmtCount(attempts)} connection attempts, ${fmtCount(clientErrors.total())} client errors` +
        (fleet ? `, ${fmtCount(fleet.counters.connected)} connected, ${fmtCount(fleet.counters.sent)} sent, ${fmtCount(fleet.counters.acknowledged)} acknowledged` : '') +
        (ingest ? `; ingest ${fmtCount(ingest.messages)} messages, ${fmtCount(ingest.pending_points)} points pending, lag ${fmtS(ingest.lag_ms)}` : ''))
    }
    const ramp = setInterval(() => void progress(), 5000)
    fleet = await sim.startFleet({url: `mqtts://127.0.0.1:${stack.record.broker.devicePort}`, trust, devices: plan.devices, intervalMs: o.intervalMs,
      metrics: sim.parseMetrics(sim.DEFAULT_METRICS), anomalyRate: 0, qos: o.qos, startRate: o.startRate, onAttempt: () => void attempts++, log})
    const startLoopMs = performance.now() - startedAt
    const deadline = startedAt + o.rampTimeoutS * 1000
    while (fleet.counters.connected < o.count && performance.now() < deadline) await sleep(100)
    const rampMs = performance.now() - startedAt
    clearInterval(ramp)
    const rampCpu = window(rampA, await sample(pids))
    const connectedAfterRamp = fleet.counters.connected
    const rampLoop = loop.read()
    report.line('ramp-up', `${fmtCount(connectedAfterRamp)} of ${fmtCount(o.count)} connected after ${fmtS(rampMs)} ` +
      `(start loop paced at ${fmtCount(o.startRate)}/s took ${fmtS(startLoopMs)}; ${fmtCount(attempts)} attempts, ${fmtCount(fleet.counters.reconnects)} reconnects)`)
    report.line('CPU during the ramp (% of one core)', `simulator ${pct(rampCpu.simulatorCpu)}, broker+ingest ${pct(rampCpu.stackCpu)}, PostgreSQL ${pct(rampCpu.pgCpu)}; ` +
      `machine ${pct(rampCpu.machineBusy)} busy of ${availableParallelism()} cores`)
    report.line('failed attempts (client side)', clientErrors.total() === 0 ? 'none' : clientErrors.top().map(([m, n]) => `${fmtCount(n)}× ${m}`).join('; '))

    // Settle: the window starts once the acknowledgements caught up with the ramp's backlog (at most
    // half a second of messages in flight) or 60 s later, so that it measures the steady state.
    await sleep(o.settleS * 1000)
    const settleEnd = performance.now() + 60_000
    const backlog = () => fleet.counters.sent - fleet.counters.acknowledged
    while (o.qos === 1 && backlog() > target / 2 && performance.now() < settleEnd) await sleep(250)
    const settledMs = performance.now() - startedAt - rampMs
    // The steady window: everything sampled at its two ends, RSS peak and loop delay in between.
    const brokerA = await stack.status()
    const profiler = await windowProfiler(o.cpuProfDir)
    loop.reset()
    await profiler.start()
    const a = await sample({...pids, counters: fleet.counters})
    let rssPeak = a.mem.rss
    const windowEnd = performance.now() + o.windowS * 1000
    while (performance.now() < windowEnd) {
      await sleep(Math.min(1000, windowEnd - performance.now()))
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss)
    }
    const b = await sample({...pids, counters: fleet.counters})
    const profile = await profiler.stop(`simulator-${o.count}-${o.intervalMs}ms`)
    const brokerB = await stack.status()
    const steadyLoop = loop.read()
    loop.stop()
    const w = window(a, b)
    const connected = fleet.counters.connected

    const stopStart = performance.now()
    stopped = await fleet.stop()
    const stopMs = performance.now() - stopStart

    // Report.
    report.line(`steady window (${fmtS(w.ms)})`, `started ${fmtS(settledMs)} after the ramp; ${fmtCount(connected)} connected; sent ${fmtRate(w.rate('sent'))}/s, acknowledged ${fmtRate(w.rate('acknowledged'))}/s; ` +
      `in flight at its start ${fmtCount(a.counters.sent - a.counters.acknowledged)}, at its end ${fmtCount(b.counters.sent - b.counters.acknowledged)}; errors ${b.counters.errors - a.counters.errors}`)
    report.goal({id: 'connected', what: `devices connected over mutual TLS, each with its own certificate (held through the window)`,
      measured: `${fmtCount(connected)} of ${fmtCount(o.count)}`, target: `${fmtCount(ISSUE_COUNT)}`,
      pass: connected < o.count ? false : o.count >= ISSUE_COUNT ? true : null})
    report.goal({id: 'ramp', what: `ramp time: fleet start → all connected (paced at ${fmtCount(o.startRate)}/s ⇒ ≥ ${fmtS((o.count / o.startRate) * 1000)}; broker bucket 500/s)`,
      measured: connectedAfterRamp === o.count ? fmtS(rampMs) : `not all within ${o.rampTimeoutS} s (${fmtCount(connectedAfterRamp)})`, pass: null})
    const acked = o.qos === 1 ? w.rate('acknowledged') : NaN
    const achieved = o.qos === 1 ? acked : w.rate('sent')
    report.goal({id: 'rate', what: `messages/s over the window, ${o.qos === 1 ? 'acknowledged (PUBACK = stored)' : 'sent (QoS 0)'}; sent ${fmtRate(w.rate('sent'))}/s`,
      measured: `${fmtRate(achieved)}/s = ${(Math.floor((achieved / target) * 1000) / 10).toFixed(1)} % of target`, target: `${fmtCount(target)}/s (≥ 99 %)`,
      pass: o.count >= ISSUE_COUNT && o.intervalMs === 1000 ? achieved >= 0.99 * target : achieved >= 0.99 * target ? null : false})
    report.goal({id: 'cpu', what: 'simulator CPU over the window (user + system, % of one core)',
      measured: `${pct(w.simulatorCpu)} (user ${pct(w.simulatorUserCpu)}) ≈ ${fmtUp((w.simulatorCpu * 1e6) / Math.max(1, w.rate('sent')), 0)} µs per message`, pass: null})
    report.goal({id: 'memory', what: 'simulator memory at the window\'s end: RSS (peak) / JS heap; per device (RSS growth since before the fleet ÷ N)',
      measured: `${MiB(b.mem.rss)} (peak ${MiB(rssPeak)}) / ${MiB(b.mem.heapUsed)}; ${fmtUp((b.mem.rss - memBefore.rss) / o.count / 1024, 1)} KiB per device`, pass: null})
    report.goal({id: 'loop', what: 'simulator event-loop delay (how late timers fire): ramp p99 / window p50 · p99 · max',
      measured: `${fmtUp(rampLoop.p99, 0)} ms / ${fmtUp(steadyLoop.p50, 0)} · ${fmtUp(steadyLoop.p99, 0)} · ${fmtUp(steadyLoop.max, 0)} ms`, pass: null})
    const ingestA = brokerA.ingest
    const ingestB = brokerB.ingest
    const rows = ingestA && ingestB ? ((ingestB.points - ingestA.points) * 1000) / w.ms : NaN
    const msgs = ingestA && ingestB ? ((ingestB.messages - ingestA.messages) * 1000) / w.ms : NaN
    report.goal({id: 'stack', what: 'dev stack over the window: ingest rows/s (messages/s); broker+ingest CPU; PostgreSQL CPU (% of one core)',
      measured: `${fmtRate(rows)} rows/s (${fmtRate(msgs)} messages/s); ${pct(w.stackCpu)}; ${pct(w.pgCpu)}`, pass: null})
    report.line('stack side', `broker connections ${brokerB.connections ?? '?'}; ingest pending points ${ingestB?.pending_points ?? '?'}, ` +
      `lag ${ingestB?.lag_ms ?? '?'} ms, write failures ${ingestB?.failures ?? '?'}; broker+ingest RSS ${fmtUp(b.stackRss / 1024, 0)} MiB`)
    report.line('machine during the window', `${pct(w.machineBusy)} busy of ${availableParallelism()} cores ` +
      `(simulator ${pct(w.simulatorCpu / availableParallelism())}, stack ${pct(w.stackCpu / availableParallelism())}, PostgreSQL ${pct(w.pgCpu / availableParallelism())}, ` +
      `the rest other processes); load average ${await loadAverage()}`)
    const refusals = await stack.brokerLog()
    if (profile) {
      report.line('CPU profile of the window', `${profile.file} (${fmtCount(Math.round(profile.totalMs))} ms sampled)`)
      report.line('  self time by package', profile.packages.join(' · '))
      report.line('  self time by function', profile.functions.join(' · '))
    }
    report.line('broker log', `${refusals.refused} connections refused by authentication, ${refusals.tls} TLS failures ` +
      `(CONNACK 3 of the rate limit is not logged: retries show as attempts beyond one per device)` +
      (refusals.last.length ? `; last: ${refusals.last.join(' | ')}` : ''))
    report.line('fleet summary (simulate -o json)', JSON.stringify(stopped))
    report.line('stop', `${fmtS(stopMs)} (offline status, wait for in-flight PUBACKs, DISCONNECT)`)
    const bottleneck = []
    if (w.machineBusy > 0.9) bottleneck.push(`the machine is saturated (${pct(w.machineBusy)} of ${availableParallelism()} cores busy)`)
    if (w.rate('sent') < 0.99 * target) bottleneck.push(`the simulator sends late (event-loop p99 ${fmtUp(steadyLoop.p99, 0)} ms at ${pct(w.simulatorCpu)} CPU)`)
    if (o.qos === 1 && acked < 0.99 * w.rate('sent')) bottleneck.push(`acknowledgements trail the sends (${fmtRate(acked)} of ${fmtRate(w.rate('sent'))}/s): the broker's ingest commits before each PUBACK`)
    report.line('bottleneck', bottleneck.length ? bottleneck.join('; ') : 'none: the target rate was met')
    report.command(`npm run build && ${reproduce(o)}`)
    process.stdout.write(`\n${report.markdownTable()}\n`)
    const missed = report.rows.some((r) => r.pass === false)
    return o.strict && missed ? 1 : 0
  } finally {
    if (fleet && !stopped) await fleet.stop().catch(() => undefined)
    await stack.stop()
  }
}
