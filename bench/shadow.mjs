// Device shadow benchmark (issue 5's goals):
//   (a) round trips of 1,000 devices over mutual TLS — desired set → delta at the device → the device
//       reports the delta's values → update/accepted at the device: ≥ 1,000 round trips/s sustained,
//       p99 < 500 ms;
//   (b) `shadow set --selector` for 100,000 devices < 10 s; separately, the time until the sync
//       service has published all 100,000 deltas.
// The stack is the dev stack's: startDevBroker() (CA under home/ca with home/ca/dev-passphrase, aedes
// behind TLS 1.3, the shadow sync service in the broker's publish path and on NOTIFY) with a pool of 8
// as `dev up` gives it. Desired state goes through setDesired()/setDesiredBySelector() (dist/lib/shadow).
// Uses the built project (dist/): run `npm run build` first.
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseCount, UsageError} from './lib/options.mjs'
import {Report} from './lib/report.mjs'
import {fmtCount, fmtMiB, fmtRate, fmtS, fmtUp} from './lib/stats.mjs'
import {openLoad} from './lib/shadow-load.mjs'
import {cpuMeter, instrumentPool, now, startProfile} from './lib/shadow-probe.mjs'
import {latLine, roundTripRun} from './lib/shadow-roundtrip.mjs'
import {unitCosts} from './lib/shadow-costs.mjs'
import {explainChunk, insertBulkDevices, SELECTOR, selectorRun} from './lib/shadow-selector.mjs'
import {traceServices} from './lib/shadow-trace.mjs'
import {openShadowWorld, PASSPHRASE} from './lib/shadow-world.mjs'

export const description = 'device shadows: round trips of 1,000 devices over mutual TLS, set --selector for 100k devices (needs npm run build)'
export const usage = `node bench/run.mjs shadow [options]      (npm run bench -- shadow [options])

  --devices N            connected devices for the round trips (default 1,000; --quick: 200)
  --duration S           seconds of each measured round-trip run (default 20; --quick: 5)
  --rate N               round trips/s offered in the paced run (default 1,000, the goal)
  --in-flight N          round trips in flight in the closed-loop run (default 250)
  --selector-devices N   devices matched by the bulk set (default 100,000; --quick: 10,000)
  --only LIST            costs, rt, selector (default all three); costs: one operation at a time,
                         wall and CPU per setDesired() and per device report
  --cost-ops N           operations of each kind in the costs part (default 500; --quick: 200)
  --load MODE            child: devices and the setDesired() caller in a child process (default);
                         inline: in the benchmark's process, sharing the broker's event loop
  --operator-pool N      connections of the setDesired() caller's pool (default 16)
  --no-listener          no 2nd LISTEN session on the sync service's channel (it times commit → NOTIFY,
                         and costs PostgreSQL a second delivery of every notification)
  --no-cli               skip the extra run of the real \`iotctl shadow set --selector\` command
  --cpu-prof [DIR]       CPU-profile every measured phase (broker process and load generator),
                         write .cpuprofile files to DIR (default: a new directory under /tmp) and
                         print the top buckets and functions
  --overlay DIR          EXPERIMENT: copy DIR's files over the snapshot of dist/ (e.g. DIR/lib/shadow/sync.js)
                         to measure a candidate change; the report says so. Not the project's code.
  --quick                smaller and shorter (a smoke run; never publish its figures)
  --strict               exit 1 when a goal is missed

Round trip k: setDesired(id, {rt: k, …}) → commit → NOTIFY → the sync service publishes the delta →
the device (mqtt.js, own certificate) reports the delta's values with clientToken k → update/accepted
reaches the device. Latency is measured from the setDesired() call to that message. Two runs: paced
(open loop at --rate, each device one round trip at a time) and closed loop (--in-flight kept busy,
as fast as they complete); the rate counts completions after the first second.`

const RATE_GOAL = 1000
const P99_GOAL_MS = 500
const SELECTOR_GOAL_MS = 10_000
const PARTS = ['costs', 'rt', 'selector']

export async function run(options) {
  const quick = options.quick === true
  const devices = options.devices ? parseCount(options.devices, 'devices') : quick ? 200 : 1000
  const durationS = options.duration ? parseCount(options.duration, 'duration') : quick ? 5 : 20
  const rate = options.rate ? parseCount(options.rate, 'rate') : RATE_GOAL
  const inFlight = options.inFlight ? parseCount(options.inFlight, 'in-flight') : Math.min(250, devices)
  const costOps = options.costOps ? parseCount(options.costOps, 'cost-ops') : quick ? 200 : 500
  const selectorDevices = options.selectorDevices ? parseCount(options.selectorDevices, 'selector-devices') : quick ? 10_000 : 100_000
  const only = options.only ? String(options.only).split(',').map((s) => s.trim()) : PARTS
  for (const p of only) if (!PARTS.includes(p)) throw new UsageError(`--only takes costs, rt and/or selector, got ${JSON.stringify(p)}`)
  const operatorPool = options.operatorPool ? parseCount(options.operatorPool, 'operator-pool') : 16
  const mode = options.load ?? 'child'
  if (mode !== 'child' && mode !== 'inline') throw new UsageError('--load must be child or inline')
  if (inFlight > devices) throw new UsageError('--in-flight cannot exceed --devices (one round trip per device at a time)')
  const profileDir = options.cpuProf ? (options.cpuProf === true ? join(tmpdir(), `iotctl-shadow-profiles-${Date.now()}`) : String(options.cpuProf)) : undefined
  if (profileDir) await mkdir(profileDir, {recursive: true})

  const report = new Report()
  // startDevBroker reads IOTCTL_CA_PASSPHRASE first: unset it here so the CA's dev-passphrase file is used, as by `dev up`.
  delete process.env.IOTCTL_CA_PASSPHRASE
  const overlay = options.overlay ? String(options.overlay) : undefined
  const world = await openShadowWorld('shadow', {overlay})
  const {db, caDir, pki, loadDist} = world
  const cleanup = []
  try {
    const [{startDevBroker}, shadowLib, {createPool}, {listen}] = await Promise.all([
      loadDist('lib/stack/dev-broker.js'), loadDist('lib/shadow/index.js'), loadDist('lib/db/pool.js'), loadDist('lib/db/listen.js')])
    const url = db.url
    await writeFile(join(caDir, 'dev-passphrase'), `${PASSPHRASE}\n`, {mode: 0o600})
    // The stack's pool, as `dev up` creates it (max 8), timed statement by statement.
    const stackPool = await createPool(url, {max: 8})
    cleanup.push(() => stackPool.end())
    const stackProbe = instrumentPool(stackPool)
    cleanup.push(async () => stackProbe.stop())
    const logs = {broker: [], ingest: [], shadow: []}
    const logTo = (name) => (line) => logs[name].push(line)
    const services = await startDevBroker({home: world.work, db: {pool: stackPool, url}, mqttPort: 0, servicePort: 0,
      logs: {broker: logTo('broker'), ingest: logTo('ingest'), shadow: logTo('shadow')}})
    cleanup.push(async () => {
      await services.broker.close()
      await services.firmware.stop()
      await services.shadow.stop()
    })
    const trace = await traceServices(services, {listen: options.listener === false ? undefined : listen, url, channel: shadowLib.SHADOW_CHANNEL})
    cleanup.push(() => trace.close())
    const cpu = cpuMeter({pgDataDir: join(world.session.dir, 'pg')})
    let stopMain
    const ctx = {report, services, trace, cpu, stackProbe, profileDir,
      profileStart: async () => void (stopMain = await startProfile()),
      profileStop: async (file) => stopMain(file)}

    report.heading('setup')
    report.line('machine', `${cpus().length} cores shared by PostgreSQL, the broker process (aedes + sync service) and the load generator`)
    report.line('build', `${world.build}; run from a copy in ${world.root} (immune to a concurrent npm run build)`)
    if (overlay) report.line('EXPERIMENT', `dist/ overlaid with the files of ${overlay}: these figures are NOT the project's code`)
    report.line('stack', `startDevBroker(): CA in ${caDir} (dev-passphrase), devices on 127.0.0.1:${services.broker.devicePort} (TLS 1.3, client certificates), pool max 8`)

    // ---- unit costs, one operation at a time ------------------------------------------------
    if (only.includes('costs')) {
      report.heading(`costs: one operation at a time, ${fmtCount(costOps)} each (no device connected; deltas published retained)`)
      const ids = Array.from({length: costOps + 50}, (_, i) => `cost-${String(i + 1).padStart(6, '0')}`) // 50 to warm up
      await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) SELECT unnest($1::text[]), 'thermostat', '{"site": "cost"}'`, [ids])
      const operatorPool = await createPool(url, {max: 1})
      const operatorProbe = instrumentPool(operatorPool)
      try {
        await unitCosts({...ctx, operatorProbe, operatorDb: {pool: operatorPool, url}, setDesired: shadowLib.setDesired}, ids)
      } finally {
        operatorProbe.stop()
        await operatorPool.end()
      }
    }

    // ---- (a) round trips ---------------------------------------------------------------------
    let rt
    if (only.includes('rt')) {
      const width = Math.max(6, String(devices).length)
      const ids = Array.from({length: devices}, (_, i) => `sh-${String(i + 1).padStart(width, '0')}`)
      await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) SELECT unnest($1::text[]), 'thermostat', '{"site": "rt"}'`, [ids])
      const t = now()
      const certs = await pki.issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ids, days: 30})
      report.heading(`(a) shadow round trips, ${fmtCount(devices)} devices over mutual TLS`)
      report.line('certificates', `${fmtCount(certs.length)} issued in ${fmtCount(Math.round(now() - t))} ms`)
      const trust = (await readFile(join(caDir, 'root.crt'), 'utf8')) + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
      const load = await openLoad(mode, {root: world.root, dbUrl: url, poolSize: operatorPool})
      cleanup.push(() => load.exit())
      cpu.watch('load generator', load.pid)
      ctx.load = load
      const conn = await load.connect({url: `mqtts://127.0.0.1:${services.broker.devicePort}`, trust,
        devices: certs.map((c) => ({id: c.record.subject_name, cert: c.certificate + c.chain, key: c.private_key}))})
      report.line('connections', `${fmtCount(conn.connected)} devices connected and subscribed (3 topics each) in ${fmtCount(Math.round(conn.connectMs))} ms, ` +
        `25 handshakes at a time; ${conn.retries} refused and retried (dev broker's connect-rate limit, 500/s)`)
      report.line('load generator', mode === 'child'
        ? `devices + setDesired() caller (own pool of ${operatorPool}) in a child process, pid ${load.pid}`
        : `devices + setDesired() caller (own pool of ${operatorPool}) IN THE BROKER PROCESS: they share its event loop`)
      const warm = await load.run({inFlight: Math.min(100, devices), durationMs: 2000})
      report.line('warm-up', `2 s closed loop, 100 in flight: ${fmtCount(warm.records.tAcc.filter(Boolean).length)} round trips (not counted)`)
      const durationMs = durationS * 1000
      const paced = await roundTripRun(ctx, {label: `paced at ${fmtCount(rate)}/s`, rate, inFlight: devices, durationMs})
      const closed = await roundTripRun(ctx, {label: `closed loop, ${fmtCount(inFlight)} in flight`, inFlight, durationMs})
      const closedInfo = await load.close()
      await load.exit()
      const scheduled = Math.floor(durationS * rate)
      const pacedFailed = paced.n - paced.completed
      report.goal({id: 'a-rate', what: `sustained round trips/s, closed loop with ${fmtCount(inFlight)} in flight, ${fmtCount(devices)} devices, ${durationS} s`,
        measured: `${fmtRate(closed.steadyRate)}/s (slowest second ${fmtCount(closed.perSecond.min)}; round trip ${latLine(closed.latency)})`,
        target: `≥ ${fmtCount(RATE_GOAL)}/s`, pass: closed.steadyRate >= RATE_GOAL && closed.completed === closed.n})
      report.goal({id: 'a-paced', what: `round trips at ${fmtCount(rate)}/s offered (open loop, ${durationS} s): completed / scheduled, sustained rate`,
        measured: `${fmtCount(paced.completed)} of ${fmtCount(scheduled)} (${fmtCount(pacedFailed)} failed, ${fmtCount(scheduled - paced.n)} never started); ${fmtRate(paced.steadyRate)}/s, slowest second ${fmtCount(paced.perSecond.min)}`,
        target: rate >= RATE_GOAL ? `all ${fmtCount(scheduled)}` : undefined, pass: rate >= RATE_GOAL ? paced.completed === scheduled : null})
      report.goal({id: 'a-p99', what: `round trip latency (setDesired() call → update/accepted at the device) at ${fmtCount(rate)}/s offered`,
        measured: `p99 ${fmtUp(paced.latency.p99, 1)} ms (p50 ${fmtUp(paced.latency.p50, 1)} ms, max ${fmtUp(paced.latency.max, 0)} ms)`,
        target: `p99 < ${P99_GOAL_MS} ms`, pass: rate >= RATE_GOAL ? paced.latency.p99 < P99_GOAL_MS && paced.completed === scheduled : null})
      const mem = process.memoryUsage()
      report.line('memory', `broker process RSS ${fmtMiB(mem.rss / 1024)} now, peak ${fmtMiB(process.resourceUsage().maxRSS)}; load generator peak ${fmtMiB(closedInfo.maxRSSKiB)}` +
        (mode === 'inline' ? ' (same process)' : ''))
      rt = {paced, closed}
    }

    // ---- (b) bulk set by selector ------------------------------------------------------------
    if (only.includes('selector')) {
      report.heading(`(b) shadow set --selector ${SELECTOR} for ${fmtCount(selectorDevices)} devices (no device connected)`)
      const t = now()
      await insertBulkDevices(db.pool, selectorDevices)
      report.line('devices', `${fmtCount(selectorDevices)} inserted with one INSERT … SELECT generate_series in ${fmtCount(Math.round(now() - t))} ms` +
        (only.includes('rt') ? ` (plus the ${fmtCount(devices)} of part (a), labelled site=rt)` : ''))
      const cliPool = await createPool(url) // what the CLI opens: max 4
      cleanup.push(() => cliPool.end())
      const cliProbe = instrumentPool(cliPool)
      cleanup.push(async () => cliProbe.stop())
      Object.assign(ctx, {cliDb: {pool: cliPool, url}, cliProbe, setDesiredBySelector: shadowLib.setDesiredBySelector})
      const rss0 = process.memoryUsage().rss
      const first = await selectorRun(ctx, {label: 'first set (creates the shadow rows)', desired: {firmware_channel: 'beta', report_every: 60}})
      const second = await selectorRun(ctx, {label: 'second set (existing shadows, new values)', desired: {firmware_channel: 'stable', report_every: 30}})
      const again = await selectorRun(ctx, {label: 'the same values again (idempotent)', desired: {firmware_channel: 'stable', report_every: 30}})
      const {rows: [check]} = await db.pool.query(`SELECT count(*)::int AS n FROM shadows s JOIN devices d USING (device_id)
        WHERE d.labels @> '{"site": "bulk"}' AND s.document #>> '{state,desired,firmware_channel}' = 'stable' AND s.document #>> '{state,delta,firmware_channel}' = 'stable'`)
      report.line('check', `${fmtCount(check.n)} of ${fmtCount(selectorDevices)} shadows hold desired firmware_channel=stable with it in the delta`)
      const {deviceSelectionSql} = await loadDist('lib/registry/index.js')
      const plan = await explainChunk(db.pool, deviceSelectionSql, selectorDevices)
      report.line('one chunk\'s SELECT … FOR UPDATE', 'EXPLAIN ANALYZE, cursor half-way (2,000 rows of setDesiredBySelector\'s row-locking loop):')
      for (const line of plan) report.line('', `      ${line}`)
      let cli
      if (options.cli !== false) {
        const env = {...process.env, CI: 'true', NO_COLOR: '1', IOTCTL_HOME: world.session.home}
        cli = await selectorRun(ctx, {label: 'the real command: iotctl shadow set --selector site=bulk firmware_channel=canary', desired: {firmware_channel: 'canary'}, viaCli: true, env, url})
      }
      report.line('memory', `broker process RSS ${fmtMiB(process.memoryUsage().rss / 1024)} now (${fmtMiB((process.memoryUsage().rss - rss0) / 1024)} more than before the first set; ` +
        `this process also ran setDesiredBySelector()), peak ${fmtMiB(process.resourceUsage().maxRSS)}`)
      const n = fmtCount(selectorDevices)
      for (const [id, label, r] of [['b-set-new', 'new shadows', first], ['b-set', 'existing shadows', second]]) {
        const ok = r.result.matched === selectorDevices && r.result.changed === selectorDevices
        report.goal({id, what: `setDesiredBySelector(), ${n} devices, ${label} (matched ${fmtCount(r.result.matched)}, changed ${fmtCount(r.result.changed)})`,
          measured: fmtS(r.callMs), target: `< ${fmtS(SELECTOR_GOAL_MS)}`, pass: ok && r.callMs < SELECTOR_GOAL_MS})
        report.goal({id: `${id}-deltas`, what: `the same set: call start → the sync service has published all ${fmtCount(r.deltas.published)} deltas`,
          measured: `${fmtS(r.lastMs)} (${fmtS(r.deltasAfterSetMs)} after the set returned)`, target: `< ${fmtS(SELECTOR_GOAL_MS)} (stricter reading)`,
          pass: r.deltas.published === selectorDevices && r.lastMs < SELECTOR_GOAL_MS})
      }
      report.goal({id: 'b-idem', what: `the same values again: matched ${fmtCount(again.result.matched)}, changed ${fmtCount(again.result.changed)}`, measured: fmtS(again.callMs), pass: null})
      if (cli) {
        report.goal({id: 'b-cli', what: `\`iotctl shadow set --selector\` command, ${n} devices (changed ${fmtCount(cli.result.changed)}), spawn → exit`,
          measured: `${fmtS(cli.cliMs)}; all deltas published ${fmtS(cli.lastMs)} after the spawn`, target: `< ${fmtS(SELECTOR_GOAL_MS)}`,
          pass: cli.result.changed === selectorDevices && cli.cliMs < SELECTOR_GOAL_MS})
      }
    }

    const serviceErrors = [...logs.shadow, ...logs.broker.filter((l) => !/creating a CA|MQTT over TLS/.test(l))]
    if (serviceErrors.length) report.line('stack log', `${serviceErrors.length} lines, e.g. ${serviceErrors.slice(0, 3).join(' | ')}`)
    if (profileDir) report.line('CPU profiles', profileDir)
    const flags = []
    if (quick) flags.push('--quick')
    if (options.devices) flags.push(`--devices ${devices}`)
    if (options.duration) flags.push(`--duration ${durationS}`)
    if (options.rate) flags.push(`--rate ${rate}`)
    if (options.inFlight) flags.push(`--in-flight ${inFlight}`)
    if (options.operatorPool) flags.push(`--operator-pool ${operatorPool}`)
    if (options.costOps) flags.push(`--cost-ops ${costOps}`)
    if (options.selectorDevices) flags.push(`--selector-devices ${selectorDevices}`)
    if (options.only) flags.push(`--only ${only.join(',')}`)
    if (mode !== 'child') flags.push(`--load ${mode}`)
    if (options.cli === false) flags.push('--no-cli')
    if (options.listener === false) flags.push('--no-listener')
    if (profileDir) flags.push('--cpu-prof')
    if (overlay) flags.push(`--overlay ${overlay}`)
    report.line('')
    report.command(`npm run build && npm run bench -- shadow${flags.length ? ` ${flags.join(' ')}` : ''}`)
    process.stdout.write(`\n${report.markdownTable()}\n`)
    return options.strict && report.rows.some((r) => r.pass === false) ? 1 : 0
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined)
    await world.close()
  }
}
