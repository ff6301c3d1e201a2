// InfluxDB sink benchmark (issue 9): the same QoS 1 telemetry load through the embedded broker
// (aedes behind TLS 1.3, the ingest in its publish path, PUBACK after the sink stored the batch)
// into PostgreSQL (the default sink) and into VictoriaMetrics through the InfluxDB sink
// (/api/v2/write), alternating, side by side in one run; then each sink alone, fed batches directly.
// Uses the built project (dist/): run `npm run build` first. Needs Debian's victoria-metrics.
import {readFile} from 'node:fs/promises'
import {cpus} from 'node:os'
import {join} from 'node:path'
import {parseCount, UsageError} from './lib/options.mjs'
import {Report} from './lib/report.mjs'
import {loadDist, openPkiWorld, PASSPHRASE} from './lib/pki-world.mjs'
import {fmtCount, fmtRate, fmtUp} from './lib/stats.mjs'
import {createPublishers} from './lib/ingest-publishers.mjs'
import {startVictoriaMetrics} from './lib/victoria-metrics.mjs'

export const description = 'telemetry through the embedded broker into InfluxDB (VictoriaMetrics) vs PostgreSQL, and the InfluxDB sink alone (needs npm run build)'
export const usage = `node bench/run.mjs influx [--devices N] [--messages N] [--rounds N] [--window N] [--publishers inline|child]
                           [--points N] [--batch N] [--quick] [--strict]

  --devices N       publishing devices, each with its own certificate and TLS session (default 50)
  --messages N      QoS 1 messages per device per run, 2 metrics each (default 1,000; --quick: 100)
  --rounds N        runs per sink, alternating postgres / influx (default 3); the medians are compared
  --window N        QoS 1 messages in flight per device (default 50)
  --publishers M    inline (default): the mqtt.js clients run in this process; child: in a child process
  --points N        points fed to each sink alone (default 400,000; --quick: 100,000)
  --batch N         points per write when feeding a sink alone (default 10,000)
  --strict          exit 1 when a goal is missed`

const RATIO_GOAL = 1.0
const DIRECT_GOAL = 100_000
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]

export async function run(options) {
  const devices = options.devices ? parseCount(options.devices, 'devices') : 50
  const perDevice = options.messages ? parseCount(options.messages, 'messages') : options.quick ? 100 : 1000
  const rounds = options.rounds ? parseCount(options.rounds, 'rounds') : 3
  const window = options.window ? parseCount(options.window, 'window') : 50
  const directPoints = options.points ? parseCount(options.points, 'points') : options.quick ? 100_000 : 400_000
  const batch = options.batch ? parseCount(options.batch, 'batch') : 10_000
  const mode = options.publishers ?? 'inline'
  if (!['inline', 'child'].includes(mode)) throw new UsageError('--publishers must be inline or child')

  const [{startBroker}, telemetry, sinks, influxSink, {createPool}] = await Promise.all([loadDist('lib/broker/server.js'), loadDist('lib/telemetry/index.js'),
    loadDist('lib/telemetry/sinks/index.js'), loadDist('lib/telemetry/sinks/influx.js'), loadDist('lib/db/pool.js')])
  const report = new Report()
  const world = await openPkiWorld('influx', {poolSize: 4})
  const vm = await startVictoriaMetrics().catch(async (error) => {
    await world.close()
    throw error
  })
  const cleanup = [() => vm.close(), () => world.close()]
  try {
    const {db, caDir, pki} = world
    const ids = Array.from({length: devices}, (_, i) => `bench-${String(i).padStart(5, '0')}`)
    await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) SELECT unnest($1::text[]), 'sensor', '{"site": "berlin"}'`, [ids])
    const certs = await pki.issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ids, days: 30})
    await pki.publishCrls(db, {caDir, passphrase: PASSPHRASE})
    const trust = (await readFile(join(caDir, 'root.crt'), 'utf8')) + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
    // The ingest gets a pool of its own, as in `iotctl serve`.
    const ingestDb = {pool: await createPool(db.url, {max: 4}), url: db.url}
    cleanup.unshift(() => ingestDb.pool.end())
    const influx = {url: vm.url, token: 'bench', org: 'bench', bucket: 'iot', labels: ['site']}
    const open = {postgres: [sinks.createPostgresSink(ingestDb)], influx: [await influxSink.createInfluxSink(influx, {db: ingestDb})]}
    const services = Object.fromEntries(Object.entries(open).map(([kind, s]) => [kind, telemetry.createTelemetryService(ingestDb, (l) => report.line(`  ${kind} log`, l), {sinks: s, retention: false})]))
    let route = services.postgres
    const broker = await startBroker({db, caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, connectRate: 100_000,
      beforeAck: (topic, payload) => route.handle(topic, payload)})
    cleanup.unshift(() => broker.close())
    const publishers = await createPublishers(mode, {devices: certs.map((c) => ({clientId: c.record.subject_name, cert: c.certificate + c.chain, key: c.private_key})), trust})
    cleanup.unshift(() => publishers.exit())
    await publishers.connect(`mqtts://127.0.0.1:${broker.devicePort}`, 4)
    cleanup.unshift(() => publishers.close())

    const total = devices * perDevice
    report.heading(`${fmtCount(devices)} devices × ${fmtCount(perDevice)} QoS 1 messages per run (${fmtCount(total)} messages, 2 metrics each), ${rounds} rounds per sink`)
    report.line('machine', `${cpus().length} cores, shared by PostgreSQL, VictoriaMetrics, the broker + ingest and the load generator (and anything else running)`)
    report.line('load', `${mode === 'inline' ? 'mqtt.js clients in this process' : 'mqtt.js clients in a child process'}, ${window} unacknowledged per device; ` +
      'a run ends at the last PUBACK, which follows the sink\'s acceptance')
    report.line('InfluxDB side', `VictoriaMetrics ${vm.url} (/api/v2/write, precision ns), tags device, type, site`)

    const T0 = Date.now() - 6 * 3_600_000
    let base = 0
    const rates = {postgres: [], influx: []}
    for (let round = 0; round < rounds; round++) {
      for (const kind of ['postgres', 'influx']) {
        route = services[kind]
        const stats0 = {...route.ingest.stats}
        const vmCpu0 = vm.cpuSeconds()
        const r = await publishers.run({qos: 1, perDevice, window, base, T0})
        const seconds = (r.end - r.start) / 1000
        const stored = kind === 'postgres'
          ? Number((await db.pool.query('SELECT count(*) AS n FROM telemetry WHERE seq >= $1 AND seq < $2', [base, base + total])).rows[0].n)
          : r.count * 2 // checked in total below (the export API has no seq)
        const s = route.ingest.stats
        const batches = s.batches - stats0.batches
        rates[kind].push(r.count / seconds)
        report.line(`${kind} round ${round + 1}`, `${fmtRate(r.count / seconds)} msgs/s (${fmtRate((2 * r.count) / seconds)} points/s) in ${fmtUp(seconds, 2)} s; ` +
          `${fmtCount(batches)} batches of ${fmtUp((s.points - stats0.points) / Math.max(1, batches), 0)} points; ${s.failures - stats0.failures} failed writes` +
          (kind === 'influx' ? `; VictoriaMetrics CPU ${fmtUp(vm.cpuSeconds() - vmCpu0, 2)} s` : `; ${fmtCount(stored)} rows stored`))
        if (kind === 'postgres' && stored !== 2 * r.count) throw new Error(`postgres: ${stored} rows for ${2 * r.count} points`)
        base += total
      }
    }
    const influxSamples = await vm.countSamples('{__name__=~"telemetry_(temperature|humidity)"}')
    report.line('stored in VictoriaMetrics', `${fmtCount(influxSamples)} samples for ${fmtCount(rounds * total * 2)} points sent`)
    if (influxSamples !== rounds * total * 2) throw new Error(`VictoriaMetrics holds ${influxSamples} samples, expected ${rounds * total * 2}`)
    const ratio = median(rates.influx) / median(rates.postgres)
    report.goal({id: 'I1', what: `QoS 1 through the embedded broker, InfluxDB sink ÷ PostgreSQL sink (medians ${fmtRate(median(rates.influx))} ÷ ${fmtRate(median(rates.postgres))} msgs/s)`,
      measured: `${ratio.toFixed(2)}×`, target: `≥ ${RATIO_GOAL.toFixed(1)}×`, pass: ratio >= RATIO_GOAL})
    await publishers.close()

    // ---- each sink alone, fed batches one after another (as the ingest's single writer does) ----
    report.heading(`each sink alone: ${fmtCount(directPoints)} points in writes of ${fmtCount(batch)} (2 metrics per device and time)`)
    const directT0 = Date.now() - 3 * 3_600_000
    const batches = []
    for (let start = 0; start < directPoints; start += batch) {
      const points = []
      for (let i = start; i < Math.min(directPoints, start + batch); i++) {
        const line = Math.floor(i / 2)
        points.push({device_id: ids[line % devices], metric: i % 2 === 0 ? 'temperature' : 'humidity', ts: new Date(directT0 + Math.floor(line / devices)).toISOString(),
          value: 20 + (i % 1000) / 100, seq: 1e9 + line})
      }
      batches.push(points)
    }
    const direct = {}
    for (const kind of ['influx', 'postgres']) {
      const sink = open[kind][0]
      const vmCpu0 = vm.cpuSeconds()
      const cpu0 = process.cpuUsage()
      const t = performance.now()
      for (const points of batches) await sink.write(points)
      const seconds = (performance.now() - t) / 1000
      const cpu = process.cpuUsage(cpu0)
      direct[kind] = directPoints / seconds
      report.line(`${kind} sink alone`, `${fmtRate(direct[kind])} points/s in ${fmtUp(seconds, 2)} s; this process CPU ${fmtUp((cpu.user + cpu.system) / 1e6, 2)} s` +
        (kind === 'influx' ? `, VictoriaMetrics CPU ${fmtUp(vm.cpuSeconds() - vmCpu0, 2)} s` : ''))
    }
    report.goal({id: 'I2', what: 'InfluxDB sink alone, batches written directly (no broker)', measured: `${fmtRate(direct.influx)} points/s`,
      target: `≥ ${fmtCount(DIRECT_GOAL)} points/s`, pass: direct.influx >= DIRECT_GOAL})
    report.goal({id: 'I3', what: 'PostgreSQL sink alone, same batches (for comparison)', measured: `${fmtRate(direct.postgres)} points/s`, pass: null})
    process.stdout.write(`\n${report.markdownTable()}\n`)
    for (const s of Object.values(services)) s.stop()
    return options.strict && report.rows.some((r) => r.pass === false) ? 1 : 0
  } finally {
    for (const c of cleanup) await c().catch(() => undefined)
  }
}
