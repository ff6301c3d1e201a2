// Connections benchmark (issue 4): N concurrent mutual-TLS device connections held by the embedded
// broker (aedes behind TLS 1.3 listeners that require client certificates), with the connect rate
// (handshakes + CONNACKs per second), connect latency, and the broker's memory per connection.
// The broker runs alone in a child process (bench/lib/connections-broker.mjs) so the figures are
// its own; every client is an mqtt.js client in this process with its own issued certificate.
// Uses the built project (dist/): run `npm run build` first.
import {readFile} from 'node:fs/promises'
import {availableParallelism} from 'node:os'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {forkBroker, snapshotBuild} from './lib/connections-child.mjs'
import {closeClients, failureSummary, newHeldSet, openClients, prepareContexts} from './lib/connections-clients.mjs'
import {busyShare, checkLimits, cpuTimes, hostLimits, postgresCpuMs} from './lib/connections-host.mjs'
import {explainQueries, sqlLabel} from './lib/connections-sql.mjs'
import {parseCount} from './lib/options.mjs'
import {openPkiWorld, PASSPHRASE} from './lib/pki-world.mjs'
import {Report, shellLine} from './lib/report.mjs'
import {fmtCount, fmtMs, fmtRate, fmtS, fmtUp, msSince, summary} from './lib/stats.mjs'

export const description = '10k concurrent mutual-TLS connections: connect rate, latency, broker memory per connection (needs npm run build)'
export const usage = `node bench/run.mjs connections [--count N] [--concurrency N] [--keep S] [--connect-rate N] [--keepalive S] [--pool N]
                               [--no-prepare] [--what-if-serial-index] [--quick] [--strict]

  --count N          devices, each with its own certificate and connection, held at once (default 10,000)
  --concurrency N    connects in flight at a time (default 200)
  --keep S           seconds the connections are held before they are counted again (default 10)
  --connect-rate N   the broker's connect token bucket, per second (default 100,000; the broker's own
                     default is 500/s, which would make this a measurement of the bucket)
  --keepalive S      MQTT keepalive of the clients (default 60)
  --pool N           PostgreSQL pool of the broker (default 8, as in the dev stack)
  --no-prepare       build each client's TLS context inside the timed connect (default: before it)
  --what-if-serial-index
                     NOT the shipped schema: add expression indexes on ltrim(serial, '0') and
                     ltrim(replaced_by, '0') to the bench database first, to measure that fix
  --quick            1,000 connections held 3 s (smoke run; never publish its figures)
  --strict           exit 1 when not every connection is held`

const ISSUE_COUNT = 10_000
const KiB = 1024

function parseOptions(options) {
  const quick = options.quick === true
  const num = (name, fallback) => (options[name] === undefined ? fallback : parseCount(options[name], name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)))
  return {
    count: num('count', quick ? 1000 : ISSUE_COUNT),
    concurrency: num('concurrency', 200),
    keepS: num('keep', quick ? 3 : 10),
    connectRate: num('connectRate', 100_000),
    keepalive: num('keepalive', 60),
    poolSize: num('pool', 8),
    strict: options.strict === true,
    prepare: options.prepare !== false,
    whatIfIndex: options.whatIfSerialIndex === true,
  }
}

const reproduce = (o) => shellLine(['npm', 'run', 'bench', '--', 'connections', '--count', String(o.count), '--concurrency', String(o.concurrency),
  '--keep', String(o.keepS), '--connect-rate', String(o.connectRate), ...(o.prepare ? [] : ['--no-prepare']),
  ...(o.whatIfIndex ? ['--what-if-serial-index'] : [])])

/** Registered devices with one issued certificate each, fresh CRLs, and the trust for the clients. */
async function prepareDevices(world, count, report) {
  const {db, caDir, pki} = world
  await db.pool.query(`INSERT INTO devices (device_id, device_type) SELECT 'conn-' || lpad(g::text, 6, '0'), 'sensor' FROM generate_series(1, $1) g`, [count])
  const ids = (await db.pool.query('SELECT device_id FROM devices ORDER BY device_id')).rows.map((r) => r.device_id)
  const start = process.hrtime.bigint()
  const certs = await pki.issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ids, days: 30})
  const ms = msSince(start)
  await pki.publishCrls(db, {caDir, passphrase: PASSPHRASE})
  await db.pool.query('ANALYZE certificates')
  report.line('devices registered, certificates', `${fmtCount(certs.length)} issued in ${fmtS(ms)} (${fmtRate(certs.length / (ms / 1000))}/s, EC P-256)`)
  // The broker's server certificate is issued by the service CA (see ingest.mjs).
  const trust = (await readFile(join(caDir, 'root.crt'), 'utf8')) + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
  return {certs, trust, contexts: null}
}

/** --what-if-serial-index: the two per-connect lookups (broker/policy.ts authenticate, pki supersedePredecessors) filter on these. */
async function addSerialIndexes(pool, report) {
  await pool.query(`CREATE INDEX bench_certificates_serial_ltrim ON certificates (ltrim(serial, '0'));
    CREATE INDEX bench_certificates_replaced_by_ltrim ON certificates (ltrim(replaced_by, '0')); ANALYZE certificates`)
  report.line('WHAT-IF (not the shipped schema)', 'expression indexes on ltrim(serial, \'0\') and ltrim(replaced_by, \'0\') added')
}

async function checkHost(o, report) {
  const limits = await hostLimits()
  report.heading(`${fmtCount(o.count)} concurrent mutual-TLS connections to the embedded broker (broker in a child process)`)
  report.line('ulimit -n (open files)', `soft ${limits.nofileSoft}, hard ${limits.nofileHard} (each process needs one fd per connection)`)
  report.line('ephemeral ports, somaxconn', `${fmtCount(limits.ephemeralPorts)} (${limits.portRange}), ${limits.somaxconn}`)
  const {errors, warnings} = checkLimits(limits, o.count)
  for (const w of warnings) report.line(`WARNING: ${w}`)
  for (const e of errors) report.line(`ERROR: ${e}`)
  return errors.length === 0
}

/** Two /proc/stat intervals (a→b, c→d) as one: [zero, summed difference]. */
const sumCpuTimes = (a, b, c, d) => [{busy: 0, total: 0}, {busy: b.busy - a.busy + d.busy - c.busy, total: b.total - a.total + d.total - c.total}]
const cpuMs = (a, b) => (b.user - a.user + b.system - a.system) / 1000
const held = (stats) => `aedes ${fmtCount(stats.connectedClients)} clients (${fmtCount(stats.clientsById)} by id), ${fmtCount(stats.tcpEstablished)} of its TCP sockets ESTABLISHED on the device port`

/** Open every client against the running broker child and sample both processes around it. */
async function measure(o, broker, port, devices, mqtt, pgDataDir) {
  const idle = await broker.request('stats', {gc: true})
  const clientBefore = {mem: process.memoryUsage(), cpu: process.cpuUsage()}
  const machineBefore = await cpuTimes()
  const pgBefore = await postgresCpuMs(pgDataDir)
  // Two halves with a broker memory sample between them: the second half's growth is the marginal
  // cost of a connection, free of the first connections' one-off costs (compiled code, pools).
  const half = Math.floor(devices.certs.length / 2)
  const held = newHeldSet()
  const open = (from, to) => openClients(mqtt, {port, certs: devices.certs.slice(from, to), contexts: devices.contexts?.slice(from, to), trust: devices.trust,
    concurrency: o.concurrency, keepalive: o.keepalive, held, onProgress: (n, ms) => process.stderr.write(`  ${fmtCount(from + n)} connects answered (${fmtS(ms)} into this half)\n`)})
  const first = await open(0, half)
  const machineMid = await cpuTimes()
  const pgMid = await postgresCpuMs(pgDataDir)
  const clientMid = process.cpuUsage()
  const halfway = await broker.request('stats', {gc: true}) // outside both timed windows
  const machineResume = await cpuTimes()
  const pgResume = await postgresCpuMs(pgDataDir)
  const clientResume = process.cpuUsage()
  const second = await open(half, devices.certs.length)
  const machineAfter = await cpuTimes()
  const pgCpu = (await postgresCpuMs(pgDataDir)) - pgResume + pgMid - pgBefore
  const clientCpu = cpuMs(clientBefore.cpu, clientMid) + cpuMs(clientResume, process.cpuUsage())
  const connected = await broker.request('stats', {gc: true})
  const opened = {results: [...first.results, ...second.results], held, windowMs: first.windowMs + second.windowMs, halves: [first, second]}
  process.stderr.write(`  holding ${fmtCount(opened.held.size)} connections for ${o.keepS} s\n`)
  await sleep(o.keepS * 1000)
  const heldStats = await broker.request('stats', {gc: true})
  if (typeof global.gc === 'function') global.gc()
  const clientMem = process.memoryUsage()
  const machineBusy = busyShare(...sumCpuTimes(machineBefore, machineMid, machineResume, machineAfter))
  return {idle, halfway, half, connected, heldStats, opened, clientBefore, clientMem, clientCpu, pgCpu, machineBusy,
    heldClientSide: opened.held.size, dropped: [...opened.held.dropped]}
}

function reportConnect(o, m, report) {
  const ok = m.opened.results.filter((r) => r.ok)
  const failed = m.opened.results.length - ok.length
  const rate = ok.length / (m.opened.windowMs / 1000)
  report.line('connect phase', `${fmtCount(ok.length)} CONNACK 0 of ${fmtCount(o.count)} in ${fmtS(m.opened.windowMs)}, ${o.concurrency} in flight` +
    (failed ? `; ${fmtCount(failed)} failed: ${failureSummary(m.opened.results)}` : ''))
  report.line('broker connect token bucket', `connectRate ${fmtCount(o.connectRate)}/s for this run (broker default 500/s would cap the rate at 500)`)
  const brokerCpu = reportCpu(m, ok.length, report)
  report.goal({id: 'rate', what: `connect rate (TLS 1.3 handshake with client certificate + CONNECT/CONNACK), ${o.concurrency} in flight`,
    measured: `${fmtRate(rate)} connections/s`, pass: null})
  const total = summary(ok.map((r) => r.ms))
  const tls = summary(ok.map((r) => r.tlsMs).filter(Number.isFinite))
  report.goal({id: 'latency', what: `connect latency p50 / p99 (connect() → CONNACK; TLS handshake part p50 / p99)`,
    measured: `${fmtMs(total.p50)} / ${fmtMs(total.p99)} (TLS ${fmtMs(tls.p50)} / ${fmtMs(tls.p99)})`, pass: null})
  report.goal({id: 'broker-cpu', what: 'broker CPU per connection (handshake, certificate checks, authentication queries)',
    measured: `${fmtMs(brokerCpu / ok.length, 2)} ≈ ${fmtRate(ok.length / (brokerCpu / 1000))} connections/s per core`, pass: null})
  return ok.length
}

/** Where the CPU of the connect phase went; returns the broker's CPU ms. */
function reportCpu(m, n, report) {
  const brokerCpu = cpuMs(m.idle.cpuAfter, m.halfway.cpu) + cpuMs(m.halfway.cpuAfter, m.connected.cpu)
  const brokerUser = (m.halfway.cpu.user - m.idle.cpuAfter.user + m.connected.cpu.user - m.halfway.cpuAfter.user) / 1000
  const coreMs = m.opened.windowMs * availableParallelism()
  const others = m.machineBusy * coreMs - brokerCpu - m.clientCpu - m.pgCpu
  const per = (ms) => `${fmtS(ms)} = ${fmtMs(ms / n, 2)}/connection`
  report.line('CPU during the connect phase', `machine ${Math.round(m.machineBusy * 100)} % busy (${availableParallelism()} cores × ${fmtS(m.opened.windowMs)})`)
  report.line('', `  broker ${per(brokerCpu)} (user ${fmtS(brokerUser)})`)
  report.line('', `  clients (this process) ${per(m.clientCpu)}`)
  report.line('', `  PostgreSQL ${Number.isFinite(m.pgCpu) ? per(m.pgCpu) : 'not measured'}`)
  report.line('', `  everything else on the machine (other processes, kernel softirq) ${fmtS(Math.max(0, others))}`)
  return brokerCpu
}

/** The broker's queries during the connect phase, with their plans against the full table. */
async function reportQueries(m, pool, report) {
  const recorded = m.connected.queries.filter((q) => q.count > 0)
  for (const q of recorded) {
    report.line(`  ${sqlLabel(q.text)}`)
    report.line('', `  ${fmtCount(q.count)} calls, mean ${fmtMs(q.totalMs / q.count, 2)} round trip as the broker saw it (its pool wait and busy event loop included)`)
  }
  for (const e of await explainQueries(pool, recorded)) {
    report.line(`  EXPLAIN ANALYZE ${sqlLabel(e.text, 40)}`, `${fmtMs(e.executionMs, 2)}: ${e.plan}`)
  }
}

function reportHold(o, m, okCount, report) {
  const s = m.heldStats
  report.line(`right after the connect phase`, held(m.connected))
  report.line(`after holding ${o.keepS} s`, `${held(s)}; client side ${fmtCount(m.heldClientSide)} connected, ${m.dropped.length} dropped`)
  const all = okCount === o.count && m.heldClientSide === o.count && s.connectedClients === o.count && s.tcpEstablished === o.count
  report.goal({id: 'held', what: `mutual-TLS connections held after ${o.keepS} s (CONNACK 0, then counted by the broker)`,
    measured: `${fmtCount(Math.min(m.heldClientSide, s.connectedClients))} of ${fmtCount(o.count)}`, target: `${fmtCount(ISSUE_COUNT)} held`,
    pass: all ? (o.count >= ISSUE_COUNT ? true : null) : false})
  const per = (key) => (s.memory[key] - m.idle.memory[key]) / o.count / KiB
  report.line('broker memory, idle → held', ['rss', 'heapUsed', 'external'].map((k) =>
    `${k} ${fmtUp(m.idle.memory[k] / KiB / KiB, 0)} → ${fmtUp(s.memory[k] / KiB / KiB, 0)} MiB`).join(', ') +
    `; peak RSS ${fmtUp(s.maxRssKiB / KiB, 0)} MiB${s.gcExposed ? ' (after global.gc())' : ' (no --expose-gc)'}`)
  const marginal = (key) => (m.connected.memory[key] - m.halfway.memory[key]) / (o.count - m.half) / KiB
  report.goal({id: 'memory', what: 'broker memory per held connection, (held − idle) ÷ N: RSS / JS heap',
    measured: `${fmtUp(per('rss'), 1)} KiB / ${fmtUp(per('heapUsed'), 1)} KiB`, pass: null})
  report.goal({id: 'memory-marginal', what: `same, marginal: growth over the second half (${fmtCount(m.half)} → ${fmtCount(o.count)} connections) ÷ its count`,
    measured: `${fmtUp(marginal('rss'), 1)} KiB / ${fmtUp(marginal('heapUsed'), 1)} KiB`, pass: null})
  const hold = cpuMs(m.connected.cpuAfter, s.cpu)
  report.line('broker CPU while holding', `${fmtUp(hold / (o.keepS * 10), 1)} % of one core (keepalive ${o.keepalive} s, revocation sweep every 2 s)`)
  report.line('bench process (clients) memory', `RSS +${fmtUp((m.clientMem.rss - m.clientBefore.mem.rss) / KiB / KiB, 0)} MiB ` +
    `(${fmtUp((m.clientMem.rss - m.clientBefore.mem.rss) / o.count / KiB, 1)} KiB per mqtt.js client)`)
  if (s.logs.refused + s.logs.tls > 0) report.line('broker refusals', `${s.logs.refused} authentication, ${s.logs.tls} TLS; last: ${s.logs.last.slice(-3).join(' | ')}`)
  return all
}

export async function run(options) {
  const o = parseOptions(options)
  const report = new Report()
  if (!(await checkHost(o, report))) return 1
  const snapshot = await snapshotBuild() // this process loads its dist modules at once, in openPkiWorld
  const {default: mqtt} = await import('mqtt')
  const world = await openPkiWorld('connections', {poolSize: 4}).catch(async (error) => {
    await snapshot.remove()
    throw error
  })
  let broker
  let clients = []
  try {
    const devices = await prepareDevices(world, o.count, report)
    if (o.whatIfIndex) await addSerialIndexes(world.db.pool, report)
    if (o.prepare) {
      const start = process.hrtime.bigint()
      devices.contexts = await prepareContexts(devices.certs, devices.trust)
      report.line('client TLS contexts', `${fmtCount(devices.contexts.length)} built before the timed window in ${fmtS(msSince(start))} (--no-prepare: inside it)`)
    }
    broker = forkBroker()
    const {devicePort} = await broker.request('start', {dist: snapshot.dist, url: world.db.url, caDir: world.caDir, passphrase: PASSPHRASE, connectRate: o.connectRate, poolSize: o.poolSize})
    const m = await measure(o, broker, devicePort, devices, mqtt, join(world.session.dir, 'pg'))
    clients = [...m.opened.held]
    const okCount = reportConnect(o, m, report)
    report.line('broker queries while connecting')
    await reportQueries(m, world.db.pool, report)
    const all = reportHold(o, m, okCount, report)
    report.command(`npm run build && ${reproduce(o)}`)
    process.stdout.write(`\n${report.markdownTable()}\n`)
    return o.strict && !all ? 1 : 0
  } finally {
    await closeClients(clients)
    await broker?.close()
    await world.db.pool.end().catch(() => undefined)
    await world.close()
    await snapshot.remove()
  }
}
