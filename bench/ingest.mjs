// Ingest benchmark (issue 4): telemetry into PostgreSQL with rollups, through the embedded broker
// (aedes behind TLS 1.3 with client certificates; the ingest runs in its publish path, QoS 1 PUBACK
// after the commit) and through Debian's mosquitto with the configuration iotctl writes (the ingest
// as a persistent-session QoS 1 subscriber, PUBACK after the commit). Each is compared with the same
// broker's delivery rate to a bare subscriber under the same load.
// Uses the built project (dist/): run `npm run build` first.
import {rmSync, statSync} from 'node:fs'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import {cpus} from 'node:os'
import {join} from 'node:path'
import {monitorEventLoopDelay} from 'node:perf_hooks'
import {parseCount, UsageError} from './lib/options.mjs'
import {Report} from './lib/report.mjs'
import {loadDist, openPkiWorld, PASSPHRASE} from './lib/pki-world.mjs'
import {fmtCount, fmtRate, fmtUp} from './lib/stats.mjs'
import {now, sentOf} from './lib/ingest-load.mjs'
import {createPublishers} from './lib/ingest-publishers.mjs'
import {cpuMeter, instrumentPool, Recorder, timedHandle} from './lib/ingest-probe.mjs'
import {startMosquitto} from './lib/mosquitto.mjs'
import {groupCommit} from './lib/ingest-whatif.mjs'
import {feed} from './lib/ingest-writer.mjs'

export const description = 'telemetry ingest into PostgreSQL via the embedded broker and via mosquitto, each vs a bare subscriber (needs npm run build)'
export const usage = `node bench/run.mjs ingest [--devices N] [--messages N] [--quick] [--only embedded,mosquitto] [--qos 0,1]
                           [--publishers inline|child] [--window N] [--mqtt-version 4|5] [--no-paced] [--strict]

  --devices N         publishing devices, each with its own certificate and TLS session (default 50)
  --messages N        messages per device per run (default 2,000; --quick: 200)
  --quick             10× fewer messages (a smoke run; never publish its figures)
  --only LIST         brokers to measure: embedded, mosquitto (default both); \`writer\` (diagnosis):
                      the ingest without a broker, iotctl's batching vs --group-commit, alternating
  --qos LIST          QoS levels to measure: 0, 1 (default both)
  --publishers MODE   inline: the devices' mqtt.js clients run in this process (default, as before);
                      child: in a child process with its own event loop (same 2 cores)
  --window N          QoS 1 messages in flight per device in the throughput runs (default 50)
  --mqtt-version V    protocol of the mosquitto-side ingest and bare subscriber (default 4, as \`iotctl serve\`)
  --no-paced          skip the runs paced at the goal rates (latency at the goal load)
  --strict            exit 1 when a goal is missed
  Diagnosis only (the figures are then NOT those of iotctl's configuration):
  --mosquitto-autosave S   save mosquitto's persistence file every S seconds instead of after every change
  --max-points N           the ingest's batch limit (TelemetryIngest maxPoints; iotctl's default 2,000)
  --group-commit [CAP]     what-if: no new batch while a write is in flight, then up to CAP points at once
                           (default 20,000); patches the running ingest (bench/lib/ingest-whatif.mjs)
  --cpu-prof-dir DIR       write a CPU profile of this process for each measured run (BROKER-KIND-qN.cpuprofile)`

const SECTIONS = ['embedded', 'mosquitto', 'writer'] // writer: diagnosis, only when asked for
const BROKERS = {
  embedded: {label: 'embedded broker (aedes)', goal: {0: 10_000, 1: 6_000}},
  mosquitto: {label: 'mosquitto 2', goal: {0: 25_000, 1: 10_000}},
}
const RATIO_GOAL = 0.9
const LATENCY_GOAL_MS = 2000
const STALL_MS = 15_000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const s1 = (ms) => `${(ms / 1000).toFixed(1)} s`
const ms0 = (ms) => `${fmtCount(Math.round(ms))} ms`
const lat = (l) => (l.n === 0 ? 'none recorded' : `p50 ${fmtUp(l.p50, 0)} ms · p99 ${fmtUp(l.p99, 0)} ms · max ${fmtUp(l.max, 0)} ms`)
const list = (value, all, name) => {
  const items = value === undefined ? all : String(value).split(',')
  for (const item of items) if (!all.includes(item)) throw new UsageError(`--${name} takes ${all.join(' and/or ')}, got ${JSON.stringify(item)}`)
  return items
}
/** Settle within `ms` or give up (a client whose broker dropped it never gets its UNSUBACK). */
const within = (promise, ms) => Promise.race([promise.catch(() => undefined), sleep(ms)])

class Stalled extends Error {}

export async function run(options) {
  const devices = options.devices ? parseCount(options.devices, 'devices') : 50
  const perDevice = options.messages ? parseCount(options.messages, 'messages') : options.quick ? 200 : 2000
  const window = options.window ? parseCount(options.window, 'window') : 50
  const mode = options.publishers ?? 'inline'
  const protocolVersion = Number(options.mqttVersion ?? 4)
  if (protocolVersion !== 4 && protocolVersion !== 5) throw new UsageError('--mqtt-version must be 4 or 5')
  const only = list(options.only, SECTIONS, 'only').filter((x) => options.only !== undefined || x !== 'writer')
  const qosLevels = list(options.qos, ['0', '1'], 'qos').map(Number)
  const autosave = options.mosquittoAutosave === undefined ? undefined : parseCount(options.mosquittoAutosave, 'mosquitto-autosave')
  const groupCap = options.groupCommit === undefined || options.groupCommit === false ? undefined
    : options.groupCommit === true ? 20_000 : parseCount(options.groupCommit, 'group-commit')
  const maxPoints = options.maxPoints === undefined ? undefined : parseCount(options.maxPoints, 'max-points')
  const paced = options.paced !== false
  const profDir = typeof options.cpuProfDir === 'string' ? options.cpuProfDir : undefined
  const total = devices * perDevice

  const [{startBroker}, telemetry, {createPool}, {default: mqtt}] = await Promise.all([
    loadDist('lib/broker/server.js'), loadDist('lib/telemetry/index.js'), loadDist('lib/db/pool.js'), import('mqtt')])
  const report = new Report()
  const world = await openPkiWorld('ingest', {poolSize: 4})
  const dropWork = () => rmSync(world.work, {recursive: true, force: true}) // also after Ctrl-C (pki-world deletes it only on close)
  process.once('exit', dropWork)
  const {db, caDir, pki} = world
  const cleanup = []
  try {
    const ids = Array.from({length: devices}, (_, i) => `bench-${String(i).padStart(5, '0')}`)
    await db.pool.query(`INSERT INTO devices (device_id, device_type) SELECT unnest($1::text[]), 'sensor'`, [ids])
    const certs = await pki.issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ids, days: 30})
    const operator = async (name) => pki.issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name, days: 30})
    const bareCert = await operator('bench-bare')
    const ingestCert = await operator('bench-ingest')
    await pki.publishCrls(db, {caDir, passphrase: PASSPHRASE})
    const trust = (await readFile(join(caDir, 'root.crt'), 'utf8')) + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
    const identity = (c) => ({cert: c.certificate + c.chain, key: c.private_key, ca: trust})

    // The ingest gets a pool of its own (as in `iotctl serve`), instrumented to time its transactions.
    const ingestDb = {pool: await createPool(db.url, {max: 4}), url: db.url}
    cleanup.push(() => ingestDb.pool.end())
    const dbProbe = instrumentPool(ingestDb.pool)
    const cpu = cpuMeter({pgDataDir: join(world.session.dir, 'pg')})
    const publishers = await createPublishers(mode, {devices: certs.map((c) => ({clientId: c.record.subject_name, cert: c.certificate + c.chain, key: c.private_key})), trust})
    cleanup.push(() => publishers.exit())
    cpu.watch('publishers', publishers.pid)
    const rec = new Recorder(total)
    const loopDelay = monitorEventLoopDelay({resolution: 10})
    loopDelay.enable()
    cleanup.push(async () => loopDelay.disable())

    report.heading(`${fmtCount(devices)} devices × ${fmtCount(perDevice)} messages per run (${fmtCount(total)} messages, 2 metrics each)`)
    report.line('machine', `${cpus().length} cores, shared by PostgreSQL, the broker, the ingest and the load generator (and anything else running)`)
    report.line('load generator', mode === 'inline'
      ? `${fmtCount(devices)} mqtt.js clients IN THIS PROCESS: they share the event loop with the embedded broker / the ingest, and the cores with everything`
      : `${fmtCount(devices)} mqtt.js clients in a child process (own event loop, pid ${publishers.pid}); still the same cores`)
    report.line('load shapes', `throughput runs: QoS 0 as fast as the clients take it, QoS 1 with ${window} in flight per device; ` +
      'paced runs: open loop at the goal rate, latency counted from the scheduled time')
    if (groupCap !== undefined) report.line('WHAT-IF, NOT IOTCTL', `the ingest's batching is patched at runtime: group commit up to ${fmtCount(groupCap)} points (bench/lib/ingest-whatif.mjs)`)
    if (maxPoints !== undefined) report.line('NOT IOTCTL\'S DEFAULT', `diagnosis: the ingest batches up to ${fmtCount(maxPoints)} points (default 2,000)`)
    report.line('rates', 'messages ÷ (last delivery or last commit − first publish); latency = commit (or delivery) − publish, per message')

    let profiler
    if (profDir) {
      const {Session} = await import('node:inspector/promises')
      await mkdir(profDir, {recursive: true})
      profiler = new Session()
      profiler.connect()
      await profiler.post('Profiler.enable')
      cleanup.push(async () => profiler.disconnect())
      report.line('CPU profiles', `${profDir} (profiling costs this process some CPU: do not publish these figures)`)
    }

    let seqBase = 0
    const T0 = Date.now() - 6 * 3_600_000 // ts = T0 + seq, 1 ms apart: unique rows

    /** Publish one run and wait until `rec` has seen every message, or nothing moved for STALL_MS. */
    const measure = async ({qos, rate, perDev = perDevice, label}) => {
      const count = devices * perDev
      if (profiler && label) await profiler.post('Profiler.start')
      rec.reset()
      loopDelay.reset()
      const cpu0 = cpu.take()
      const base = seqBase
      seqBase += count
      const t = now()
      let pub
      let pubError
      void publishers.run({qos, perDevice: perDev, window, rate, base, T0}).then((p) => (pub = p), (e) => (pubError = e))
      let seen = 0
      let moved = t
      for (;;) {
        await sleep(20)
        if (pubError) throw pubError
        if (rec.n !== seen) {
          seen = rec.n
          moved = now()
        }
        if (pub && seen >= count) break
        if (now() - moved > STALL_MS) break
      }
      if (!pub) throw new Stalled(`QoS ${qos}: nothing moved for ${STALL_MS / 1000} s with the publishers not done (${fmtCount(seen)} of ${fmtCount(count)} seen)`)
      const cpuUse = cpu.delta(cpu0, cpu.take())
      if (profiler && label) {
        const {profile} = await profiler.post('Profiler.stop')
        await writeFile(join(profDir, `${label}.cpuprofile`), JSON.stringify(profile))
      }
      const eld = {p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6}
      return {count, base, pub, seen, end: rec.last, latency: rec.summary(), cpu: cpuUse, eld}
    }
    const cpuLine = (c) => {
      const p = c.parts
      const parts = [`this process ${s1(p.bench)}`]
      if (p.publishers !== undefined) parts.push(`publisher child ${s1(p.publishers)}`)
      if (p.mosquitto !== undefined) parts.push(`mosquitto ${s1(p.mosquitto)}`)
      parts.push(`PostgreSQL ${s1(p.postgres ?? 0)}`)
      return `${parts.join(', ')} in ${s1(c.wallMs)} = ${(c.ours / c.wallMs).toFixed(2)} cores; machine busy ${(c.machineBusy / c.wallMs).toFixed(2)} cores ` +
        `(others ${(c.others / c.wallMs).toFixed(2)})`
    }
    const runLines = (r, extra) => {
      report.line('  CPU', cpuLine(r.cpu))
      report.line('  event loop', `this process: delay p50 ${fmtUp(r.eld.p50, 0)} ms · p99 ${fmtUp(r.eld.p99, 0)} ms · max ${fmtUp(r.eld.max, 0)} ms` +
        (r.pub.disconnects ? `; ${r.pub.disconnects} publisher connections closed` : ''))
      extra?.()
    }
    const counts = async (base, count) => {
      const {rows: [r]} = await db.pool.query(`SELECT count(*) AS rows, count(DISTINCT seq) AS messages FROM telemetry WHERE seq >= $1 AND seq < $2`, [base, base + count])
      return {rows: Number(r.rows), messages: Number(r.messages)}
    }
    const rollups = async () => {
      const {rows: [r]} = await db.pool.query(`SELECT (SELECT coalesce(sum(count), 0) FROM telemetry_1m) AS m,
        (SELECT coalesce(sum(count), 0) FROM telemetry_1h) AS h, (SELECT coalesce(sum(count), 0) FROM telemetry_1d) AS d`)
      return [Number(r.m), Number(r.h), Number(r.d)]
    }

    /** The broker alone: a bare subscriber (subscribed, its deliveries recorded in `rec`). */
    const bareRun = async (b, qos, subscriber, extra) => {
      let closes = 0
      const onClose = () => closes++
      subscriber.on('close', onClose)
      const r = await measure({qos, label: `${b}-bare-q${qos}`}).finally(() => subscriber.off('close', onClose))
      const wall = r.end - r.pub.start
      const rate = r.seen / (wall / 1000)
      report.line(`bare subscriber, QoS ${qos}`, `${fmtCount(r.seen)} of ${fmtCount(r.count)} delivered in ${ms0(wall)}: ${fmtRate(rate)} msgs/s ` +
        `(publishers done after ${ms0(r.pub.end - r.pub.start)})`)
      report.line('  delivery latency', lat(r.latency))
      runLines(r, extra)
      if (closes) report.line('  BARE SUBSCRIBER DROPPED', `its connection closed ${closes} time(s) during the run (no reconnect: the rest stays undelivered)`)
      report.goal({id: `${b}-bare-q${qos}`, what: `${BROKERS[b].label} → bare subscriber, QoS ${qos}`,
        measured: `${fmtRate(rate)} msgs/s (${fmtCount(r.seen)} of ${fmtCount(r.count)}${closes ? ', subscriber dropped' : ''})`, pass: null})
      return {rate, latency: r.latency}
    }

    /** The ingest: rows landed in PostgreSQL with rollups. `pace`: open loop at that rate. */
    const ingestRun = async (b, qos, service, {pace, bare, extra} = {}) => {
      const bareRate = bare?.rate
      const statsBefore = {...service.ingest.stats}
      const rollBefore = await rollups()
      dbProbe.reset()
      const r = await measure({qos, rate: pace, label: `${b}-${pace ? 'paced' : 'ingest'}-q${qos}`})
      await service.flush()
      const landed = await counts(r.base, r.count)
      const roll = (await rollups()).map((v, i) => v - rollBefore[i])
      const st = Object.fromEntries(Object.entries(service.ingest.stats).map(([k, v]) => [k, v - (statsBefore[k] ?? 0)]))
      const wall = r.end - r.pub.start
      const rate = landed.messages / (wall / 1000)
      report.line(pace ? `paced at ${fmtCount(pace)}/s, QoS ${qos}` : `ingest, QoS ${qos}`, `${fmtCount(landed.messages)} of ${fmtCount(r.count)} messages landed ` +
        `(${fmtCount(landed.rows)} rows; rollups 1m/1h/1d ${roll.map(fmtCount).join('/')}) in ${ms0(wall)}: ${fmtRate(rate)} msgs/s (publishers done after ${ms0(r.pub.end - r.pub.start)})`)
      report.line('  publish → commit', lat(r.latency))
      const d = dbProbe.stats
      report.line('  ingest writer', `${fmtCount(d.tx)} transactions, ${fmtCount(Math.round(st.points / Math.max(1, st.batches)))} points each on average; ` +
        `busy ${ms0(d.txMs)} of ${ms0(wall)} (${Math.round((100 * d.txMs) / wall)} %): write statement ${ms0(d.writeMs)}, COMMIT ${ms0(d.commitMs)}, ` +
        `BEGIN ${ms0(d.beginMs)}, other ${ms0(d.otherMs)}, pool wait ${ms0(d.connectMs)}; slowest transaction ${ms0(d.maxTxMs)}` +
        (st.rejected || st.failures ? `; ${st.rejected} rejected, ${st.failures} failed writes` : ''))
      runLines(r, extra)
      const rollOk = roll.every((v) => v === landed.rows)
      const label = BROKERS[b].label
      if (!pace) {
        report.goal({id: `${b}-ingest-q${qos}`, what: `${label}: messages landed in PostgreSQL with rollups, QoS ${qos}`,
          measured: `${fmtRate(rate)} msgs/s${rollOk ? '' : ' (ROLLUPS DIFFER from rows)'}`, target: `≥ ${fmtCount(BROKERS[b].goal[qos])}/s`,
          pass: rate >= BROKERS[b].goal[qos] && rollOk})
        const ratio = rate / bareRate
        report.goal({id: `${b}-ratio-q${qos}`, what: `${label}: ingest ÷ bare subscriber, QoS ${qos}`,
          measured: bareRate ? `${(Math.floor(ratio * 100) / 100).toFixed(2)} (${fmtRate(rate)} ÷ ${fmtRate(bareRate)})` : 'not measurable: the bare-subscriber run did not complete',
          target: `≥ ${RATIO_GOAL.toFixed(2)}`, pass: Boolean(bareRate) && ratio >= RATIO_GOAL})
        const lost = r.count - landed.messages
        report.goal({id: `${b}-loss-q${qos}`, what: `${label}: messages lost, QoS ${qos}`,
          measured: `${fmtCount(lost)} (${fmtCount(landed.messages)} of ${fmtCount(r.count)} landed, ${fmtCount(landed.rows)} rows)`,
          target: qos === 1 ? '0' : undefined, pass: qos === 1 ? lost === 0 && landed.rows === 2 * r.count : null})
      } else {
        report.goal({id: `${b}-paced-rate-q${qos}`, what: `${label}: landed with ${fmtCount(pace)}/s offered (the goal rate), QoS ${qos}`,
          measured: `${fmtRate(rate)} msgs/s (${fmtCount(landed.messages)} of ${fmtCount(r.count)}; publishers took ${ms0(r.pub.end - r.pub.start)} for a ${ms0((r.count * 1000) / pace)} schedule)`,
          pass: null})
      }
      // The QoS 0 throughput run offers everything at once (the publishers are done long before the
      // broker is): its latency is the backlog's drain time, which no goal rate can bound, so it is
      // shown with the bare subscriber's for comparison but not graded. The paced runs grade latency
      // at the goal load; the QoS 1 throughput run (closed loop, bounded window) is graded too.
      const burst = !pace && qos === 0
      const offered = (r.count * 1000) / Math.max(1, r.pub.end - r.pub.start)
      report.goal({id: `${b}-${pace ? 'paced' : 'ingest'}-latency-q${qos}`,
        what: `${label}: publish → row latency, QoS ${qos}, ${pace ? `paced at the goal rate ${fmtCount(pace)}/s` : burst
          ? `burst (${fmtRate(offered)}/s offered; not graded: latency here is the backlog's drain time)` : `throughput run (${window} in flight per device)`}`,
        measured: (r.latency.n ? `p99 ${fmtUp(r.latency.p99 / 1000, 2)} s (p50 ${fmtUp(r.latency.p50 / 1000, 2)} s, max ${fmtUp(r.latency.max / 1000, 2)} s; ${fmtCount(r.latency.n)} msgs)` : 'none recorded') +
          (burst && bare?.latency?.n ? `; bare subscriber's delivery p99 ${fmtUp(bare.latency.p99 / 1000, 2)} s` : ''),
        target: burst ? undefined : `p99 < ${LATENCY_GOAL_MS / 1000} s`, pass: burst ? null : r.latency.n === r.count && r.latency.p99 < LATENCY_GOAL_MS})
      return rate
    }

    /** One broker's runs: warm-up, then per QoS bare and ingest back to back, then the paced runs. */
    const section = async (b, hooks) => {
      // A run where nothing moves for STALL_MS is reported, its publishers reconnected, and the rest goes on.
      const guarded = async (what, body) => {
        try {
          await body()
        } catch (error) {
          if (!(error instanceof Stalled)) throw error
          report.line('RUN ABORTED', `${what}: ${error.message}`)
          hooks.extra?.()
          report.goal({id: `${b}-aborted`, what: `${BROKERS[b].label}: ${what} did not complete`, measured: error.message, target: 'every run completes', pass: false})
          await publishers.close()
          await publishers.connect(hooks.url, 4)
        }
      }
      const warm = Math.max(10, Math.floor(perDevice / 10))
      await guarded('warm-up (bare)', () => hooks.bare(async () => measure({qos: 1, perDev: warm})))
      await guarded('warm-up (ingest)', () => hooks.ingest(async () => measure({qos: 1, perDev: warm})))
      for (const qos of qosLevels) {
        let bare
        await guarded(`bare subscriber, QoS ${qos}`, () => hooks.bare(async (subscriber) => (bare = await bareRun(b, qos, subscriber, hooks.extra))))
        await guarded(`ingest, QoS ${qos}`, () => hooks.ingest(async (service) => ingestRun(b, qos, service, {bare, extra: hooks.extra})))
      }
      if (paced) {
        for (const qos of qosLevels) {
          await guarded(`paced ingest, QoS ${qos}`, () => hooks.ingest(async (service) => ingestRun(b, qos, service, {pace: BROKERS[b].goal[qos], extra: hooks.extra})))
        }
      }
    }

    // ---- diagnosis: the ingest without a broker ------------------------------------------------
    if (only.includes('writer')) {
      const cap = groupCap ?? 20_000
      report.heading(`the ingest alone (no broker, no MQTT): ${fmtCount(total)} messages handed to handle(); iotctl's batching vs group commit (what-if, cap ${fmtCount(cap)})`)
      const results = {}
      for (const pace of [undefined, BROKERS.embedded.goal[0], BROKERS.mosquitto.goal[0]]) {
        for (let round = 0; round < 3; round++) {
          for (const variant of round % 2 ? ['group commit', 'iotctl'] : ['iotctl', 'group commit']) {
            const service = telemetry.createTelemetryService(ingestDb, (line) => report.line('  ingest log', line), {maxPoints})
            if (variant === 'group commit') groupCommit(service.ingest, cap)
            rec.reset()
            dbProbe.reset()
            const cpu0 = cpu.take()
            const base = seqBase
            seqBase += total
            const f = await feed(timedHandle((t, p) => service.handle(t, p), rec), {ids, count: total, rate: pace, base, T0})
            await service.flush()
            const c = cpu.delta(cpu0, cpu.take())
            const l = rec.summary()
            const rate = rec.n / ((rec.last - f.start) / 1000)
            const key = `${pace ? `paced ${fmtCount(pace)}/s` : 'all at once'}, ${variant}`
            ;(results[key] ??= []).push({rate, p99: l.p99, tx: dbProbe.stats.tx})
            report.line(key, `${fmtRate(rate)} msgs/s; ${fmtCount(dbProbe.stats.tx)} transactions; publish → commit ${lat(l)}; ` +
              `CPU this process ${s1(c.parts.bench)}, PostgreSQL ${s1(c.parts.postgres ?? 0)}; others ${(c.others / c.wallMs).toFixed(2)} cores`)
          }
        }
      }
      for (const [key, runs] of Object.entries(results)) {
        const rates = runs.map((r) => r.rate).sort((a, b) => a - b)
        const p99s = runs.map((r) => r.p99).sort((a, b) => a - b)
        report.goal({id: 'writer', what: `ingest alone, ${key} (median of ${runs.length}; range)`, pass: null,
          measured: `${fmtRate(rates[1])} msgs/s (${fmtRate(rates[0])}–${fmtRate(rates[2])}); p99 ${fmtUp(p99s[1], 0)} ms (${fmtUp(p99s[0], 0)}–${fmtUp(p99s[2], 0)}); ${runs.map((r) => r.tx).join('/')} transactions`})
      }
    }

    // ---- the embedded broker -----------------------------------------------------------------
    if (only.includes('embedded')) {
      const b = 'embedded'
      let hook // off: the bare-subscriber runs; on: the ingest in the publish path
      const broker = await startBroker({db, caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, connectRate: 100_000,
        beforeAck: (topic, payload) => (hook ? hook(topic, payload) : Promise.resolve())})
      const service = telemetry.createTelemetryService(ingestDb, (line) => report.line('  ingest log', line), {maxPoints})
      if (groupCap !== undefined) groupCommit(service.ingest, groupCap)
      const timed = timedHandle((t, p) => service.handle(t, p), rec)
      report.heading(`${BROKERS[b].label}: ingest in the publish path (PUBACK after commit)`)
      const {connectMs} = await publishers.connect(`mqtts://127.0.0.1:${broker.devicePort}`, 4)
      report.line('TLS 1.3 connections', `${fmtCount(devices)} in ${connectMs.toFixed(0)} ms (sequential)`)
      await section(b, {
        url: `mqtts://127.0.0.1:${broker.devicePort}`,
        bare: async (body) => {
          const c = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.servicePort}`, {clientId: 'bench-bare', ...identity(bareCert), reconnectPeriod: 0, protocolVersion: 4})
          try {
            await c.subscribeAsync('devices/+/telemetry', {qos: 1})
            const handler = (_t, p) => rec.record(sentOf(p))
            c.on('message', handler)
            await body(c).finally(() => c.off('message', handler))
          } finally {
            await within(c.endAsync(), 10_000)
          }
        },
        ingest: async (body) => {
          hook = timed
          try {
            await body(service)
            await service.flush()
          } finally {
            hook = undefined
          }
        },
      })
      await publishers.close()
      await broker.close()
      await service.flush()
    }

    // ---- mosquitto -----------------------------------------------------------------------------
    if (only.includes('mosquitto')) {
      const b = 'mosquitto'
      const mosq = await startMosquitto({caDir, passphrase: PASSPHRASE, outDir: join(world.work, 'mosquitto'), autosaveSeconds: autosave})
      cleanup.push(() => mosq.stop())
      cpu.watch('mosquitto', mosq.pid)
      report.heading(`${BROKERS[b].label} with iotctl's config: ingest = persistent QoS 1 subscriber, MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}, PUBACK after commit`)
      if (autosave !== undefined) report.line('NOT IOTCTL\'S CONFIG', `diagnosis: autosave_on_changes false, autosave_interval ${autosave} (iotctl writes: true, 1 = save after every change)`)
      const {connectMs} = await publishers.connect(`mqtts://127.0.0.1:${mosq.devicePort}`, 4)
      report.line('TLS 1.3 connections', `${fmtCount(devices)} in ${connectMs.toFixed(0)} ms (sequential)`)
      const serviceUrl = `mqtts://127.0.0.1:${mosq.servicePort}`
      const v5 = protocolVersion === 5 ? {properties: {receiveMaximum: 2000}} : {}
      /** Drop a service's persistent session (and whatever is queued for it): a clean connect. */
      const wipe = async (clientId, cert) => {
        const c = await mqtt.connectAsync(serviceUrl, {clientId, ...identity(cert), reconnectPeriod: 0, protocolVersion, clean: true})
        await within(c.endAsync(), 10_000)
      }
      let mark = mosq.mark()
      const routine = /New connection from|New client connected|Client \S+ disconnected\.$|should not be run as root|does not contain '%c' or '%u'|unexpected eof while reading|^\s*$/
      const extra = () => {
        const all = mosq.since(mark).split('\n').filter((l) => !routine.test(l))
        mark = mosq.mark()
        const saves = all.filter((l) => /Saving in-memory database/.test(l)).length
        const lines = all.filter((l) => !/Saving in-memory database/.test(l))
        let size = 0
        try {
          size = statSync(join(world.work, 'mosquitto', 'data', 'mosquitto.db')).size
        } catch {
          // not saved yet
        }
        report.line('  mosquitto persistence', `${fmtCount(saves)} saves of the in-memory database during the run (file now ${(size / 1048576).toFixed(1)} MiB)`)
        if (lines.length) report.line('  mosquitto log', `${lines.length} other line(s): ${lines.slice(0, 4).map((l) => l.replace(/^\d+: /, '')).join(' | ')}`)
      }
      await section(b, {
        url: `mqtts://127.0.0.1:${mosq.devicePort}`,
        extra,
        // The bare subscriber mirrors the ingest's session: service listener, persistent session, QoS 1, same filters.
        bare: async (body) => {
          mark = mosq.mark()
          const c = await mqtt.connectAsync(serviceUrl, {clientId: 'bench-bare', ...identity(bareCert), reconnectPeriod: 0, protocolVersion, clean: false, ...v5})
          try {
            await c.subscribeAsync([...telemetry.INGEST_TOPICS], {qos: 1})
            const handler = (_t, p) => rec.record(sentOf(p))
            c.on('message', handler)
            await body(c).finally(() => c.off('message', handler))
          } finally {
            c.end(true)
            await wipe('bench-bare', bareCert) // nothing may queue for it during the ingest runs
          }
        },
        ingest: async (body) => {
          mark = mosq.mark()
          const ingest = await telemetry.startMqttIngest({db: ingestDb, brokerUrl: serviceUrl, clientId: 'bench-ingest', tls: identity(ingestCert), shared: false,
            protocolVersion, maxPoints, log: (line) => (/subscribed to/.test(line) ? undefined : report.line('  ingest log', line))})
          ingest.telemetry.handle = timedHandle(ingest.telemetry.handle, rec)
          if (groupCap !== undefined) groupCommit(ingest.telemetry.ingest, groupCap)
          try {
            await body(ingest.telemetry)
          } finally {
            await within(ingest.stop(), 60_000)
            await wipe('bench-ingest', ingestCert) // nothing may queue for it during the bare runs
          }
        },
      })
      await publishers.close()
    }

    const flags = [`--devices ${devices}`, options.quick && !options.messages ? '--quick' : `--messages ${perDevice}`]
    if (mode !== 'inline') flags.push(`--publishers ${mode}`)
    if (window !== 50) flags.push(`--window ${window}`)
    if (protocolVersion !== 4) flags.push(`--mqtt-version ${protocolVersion}`)
    if (options.only) flags.push(`--only ${only.join(',')}`)
    if (options.qos !== undefined) flags.push(`--qos ${qosLevels.join(',')}`)
    if (!paced) flags.push('--no-paced')
    if (autosave !== undefined) flags.push(`--mosquitto-autosave ${autosave}`)
    if (maxPoints !== undefined) flags.push(`--max-points ${maxPoints}`)
    if (groupCap !== undefined) flags.push(`--group-commit ${groupCap}`)
    report.line('')
    report.command(`npm run build && npm run bench -- ingest ${flags.join(' ')}`)
    process.stdout.write(`\n${report.markdownTable()}\n`)
    return options.strict && report.rows.some((r) => r.pass === false) ? 1 : 0
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => undefined)
    await world.close()
    process.off('exit', dropWork)
  }
}
