// Ingest benchmark (issue 4, first part): telemetry through the embedded broker (aedes behind TLS
// 1.3 with client certificates) into PostgreSQL with rollups, side by side with the same broker's
// delivery rate to a bare subscriber under the same load. Mosquitto, 10,000 connections and p99
// latency are not measured yet.
// Uses the built project (dist/): run `npm run build` first.
import {join} from 'node:path'
import {parseCount} from './lib/options.mjs'
import {Report} from './lib/report.mjs'
import {loadDist, openPkiWorld, PASSPHRASE} from './lib/pki-world.mjs'
import {fmtCount, fmtRate, msSince} from './lib/stats.mjs'

export const description = 'telemetry ingest through the embedded broker into PostgreSQL vs a bare subscriber (needs npm run build)'
export const usage = `node bench/run.mjs ingest [--devices N] [--messages N] [--quick]

  --devices N    publishing devices, each with its own certificate and TLS session (default 50)
  --messages N   messages per device per QoS level (default 2,000)
  --quick        10× fewer messages`


export async function run(options) {
  const devices = options.devices ? parseCount(options.devices, '--devices') : 50
  const perDevice = options.messages ? parseCount(options.messages, '--messages') : options.quick ? 200 : 2000
  const [{startBroker}, telemetry, {default: mqtt}] = await Promise.all([
    loadDist('lib/broker/server.js'), loadDist('lib/telemetry/index.js'), import('mqtt')])
  const report = new Report()
  const world = await openPkiWorld('ingest', {poolSize: 8})
  const {db, caDir, pki} = world
  const clients = []
  try {
    const ids = Array.from({length: devices}, (_, i) => `bench-${String(i).padStart(5, '0')}`)
    await db.pool.query(`INSERT INTO devices (device_id, device_type) SELECT unnest($1::text[]), 'sensor'`, [ids])
    const certs = await pki.issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ids, days: 30})
    const observer = await pki.issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name: 'bench', days: 30})
    await pki.publishCrls(db, {caDir, passphrase: PASSPHRASE})
    const {readFile} = await import('node:fs/promises')
    const trust = (await readFile(join(caDir, 'root.crt'), 'utf8')) + (await readFile(join(caDir, 'service-ca.crt'), 'utf8'))
    // The ingest runs in the broker's publish path (PUBACK after commit); off for the bare-subscriber run.
    let service
    const broker = await startBroker({db, caDir, passphrase: PASSPHRASE, devicePort: 0, servicePort: 0, connectRate: 100_000,
      beforeAck: (topic, payload) => service ? service.handle(topic, payload) : Promise.resolve()})
    const connect = (cert, clientId, port) => mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {clientId, cert: cert.certificate + cert.chain,
      key: cert.private_key, ca: trust, reconnectPeriod: 0, protocolVersion: 4})
    const start = process.hrtime.bigint()
    for (const cert of certs) clients.push(await connect(cert, cert.record.subject_name, broker.devicePort))
    const connectMs = msSince(start)
    report.heading(`${fmtCount(devices)} devices × ${fmtCount(perDevice)} messages per QoS level, one process, 2 cores shared`)
    report.line('TLS 1.3 connections', `${fmtCount(devices)} in ${connectMs.toFixed(0)} ms (${fmtRate(devices / (connectMs / 1000))} handshakes/s, sequential)`)
    // Unique timestamps per device (one global sequence, 1 ms apart): every message is a new row.
    let seq = 0
    const T0 = Date.now() - 3_600_000
    const payload = () => JSON.stringify({ts: T0 + seq, seq: seq++, metrics: {temperature: 21.5, humidity: 40}})
    const publishAll = async (qos) => {
      const t = process.hrtime.bigint()
      await Promise.all(clients.map(async (c, n) => {
        for (let i = 0; i < perDevice; i++) {
          const p = c.publishAsync(`devices/${ids[n]}/telemetry`, payload(), {qos})
          if (qos === 1 && i % 50 === 49) await p // bounded in-flight window per device
        }
        await c.publishAsync(`devices/${ids[n]}/telemetry`, payload(), {qos: 1}) // ordered after the QoS 0 burst
      }))
      return msSince(t)
    }
    // (1) the broker alone: a bare subscriber counts deliveries
    const bareRate = {}
    const bare = await connect(observer, 'bench-bare', broker.servicePort)
    let delivered = 0
    bare.on('message', () => delivered++)
    await bare.subscribeAsync('devices/+/telemetry', {qos: 1})
    for (const qos of [0, 1]) {
      delivered = 0
      const total = devices * (perDevice + 1)
      const ms = await publishAll(qos)
      const deadline = Date.now() + 60_000
      while (delivered < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      report.line(`bare subscriber, QoS ${qos}`, `${fmtCount(delivered)} of ${fmtCount(total)} delivered, ${fmtRate(delivered / (ms / 1000))} msgs/s (publish window ${ms.toFixed(0)} ms)`)
      bareRate[qos] = delivered / (ms / 1000)
      report.goal({id: `bare-q${qos}`, what: `aedes → bare subscriber, QoS ${qos}`, measured: `${fmtRate(bareRate[qos])} msgs/s`, pass: null})
    }
    await bare.endAsync()
    // (2) the ingest: rows landed in PostgreSQL with rollups
    service = telemetry.createTelemetryService(db, () => undefined)
    const ingest = service
    for (const qos of [0, 1]) {
      const before = Number((await db.pool.query('SELECT count(*) AS n FROM telemetry')).rows[0].n)
      const t = process.hrtime.bigint()
      await publishAll(qos)
      const expected = devices * (perDevice + 1) * 2
      const deadline = Date.now() + 120_000
      let landed = 0
      while (Date.now() < deadline) {
        await ingest.flush()
        landed = Number((await db.pool.query('SELECT count(*) AS n FROM telemetry')).rows[0].n) - before
        if (landed >= expected) break
        await new Promise((r) => setTimeout(r, 50))
      }
      const ms = msSince(t)
      const rollup = Number((await db.pool.query('SELECT sum(count) AS n FROM telemetry_1m')).rows[0].n)
      report.line(`ingest, QoS ${qos}`, `${fmtCount(landed / 2)} messages (${fmtCount(landed)} points) landed in ${ms.toFixed(0)} ms; 1-minute rollup count ${fmtCount(rollup)}`)
      report.goal({id: `ingest-q${qos}`, what: `messages landed in PostgreSQL with rollups, QoS ${qos}`, measured: `${fmtRate(landed / 2 / (ms / 1000))} msgs/s`,
        target: qos === 0 ? '≥ 10,000/s' : '≥ 6,000/s', pass: landed / 2 / (ms / 1000) >= (qos === 0 ? 10_000 : 6_000)})
      const ratio = landed / 2 / (ms / 1000) / bareRate[qos]
      report.goal({id: `ratio-q${qos}`, what: `ingest ÷ bare subscriber, QoS ${qos}`, measured: (Math.floor(ratio * 100) / 100).toFixed(2), target: '≥ 0.90', pass: ratio >= 0.9})
    }
    report.command(`npm run build && npm run bench -- ingest --devices ${devices} --messages ${perDevice}`)
    await Promise.all(clients.map((c) => c.endAsync(true)))
    await broker.close()
    await ingest.flush()
    await db.pool.end()
    process.stdout.write(`\n${report.markdownTable()}\n`)
    return 0
  } finally {
    await world.close()
  }
}
