// The shadow benchmark's load generator: N simulated devices (one mqtt.js client, certificate and
// TLS 1.3 session each) plus the operator side that sets desired state with setDesired() from
// dist/lib/shadow — the real path: commit → NOTIFY → the sync service publishes the delta.
//
// One round trip, k: setDesired(device, {rt: k, …}) → the device receives devices/{id}/shadow/delta
// → it reports the delta's values on shadow/update (clientToken k) → it receives
// shadow/update/accepted with clientToken k. Each device has at most one round trip in flight; idle
// devices wait in a FIFO, so a device rests as long as possible between two of its round trips.
// Runs in the benchmark's process (--load inline) or in a child process (default, shadow-child.mjs).
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {monitorEventLoopDelay} from 'node:perf_hooks'
import {instrumentPool, now, startProfile} from './shadow-probe.mjs'

const DEBUG = Boolean(process.env.IOTCTL_BENCH_DEBUG)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Desired values of round trip k: rt always changes, the others often (a realistic small patch). */
const desiredFor = (k) => ({rt: k, target_temperature: 18 + (k % 10), mode: k % 2 ? 'heat' : 'cool'})

export async function createLoad({root, dbUrl, poolSize = 8}) {
  const dist = (path) => import(pathToFileURL(join(root, 'dist', path)).href)
  const [{setDesired}, {createPool}, {default: mqtt}] = await Promise.all([dist('lib/shadow/index.js'), dist('lib/db/pool.js'), import('mqtt')])
  // A long connect timeout: when the system falls behind, setDesired() calls queue here, and that
  // wait counts in their round trip instead of failing as "cannot reach PostgreSQL" after 5 s.
  const pool = await createPool(dbUrl, {max: poolSize, connectTimeoutMs: 120_000})
  const db = {pool, url: dbUrl}
  const poolProbe = instrumentPool(pool)
  const loop = monitorEventLoopDelay({resolution: 10})
  loop.enable()
  const devices = []
  const counters = {}
  const resetCounters = () => Object.assign(counters, {clears: 0, duplicateDeltas: 0, strayDeltas: 0, strayAccepted: 0, rejected: 0, closes: 0})
  resetCounters()
  let current // the run in progress: {finish(p, err)}
  let counter = 0 // round trip numbers are unique across runs: a repeated k would set unchanged values (no delta)
  let stopProfile

  function onMessage(dev, topic, payload) {
    const t = now()
    const leaf = topic.slice(dev.prefix.length)
    if (DEBUG) (dev.log ??= []).push(`${t.toFixed(1)} ${leaf} ${payload.toString('utf8').slice(0, 160)} pending=${dev.pending?.k} last=${dev.lastVersion}`)
    if (leaf === 'shadow/delta') {
      if (payload.length === 0) return void counters.clears++ // the retained delta cleared after a report
      const body = JSON.parse(payload.toString('utf8'))
      if (body.version <= dev.lastVersion) return void counters.duplicateDeltas++ // as devices should: ignore an older or repeated version
      dev.lastVersion = body.version
      const p = dev.pending
      if (!p || body.state?.rt !== p.k) return void counters.strayDeltas++
      p.tDelta = t
      // Report the delta's values: what a device does once it has applied them.
      dev.client.publish(dev.updateTopic, JSON.stringify({state: {reported: body.state}, clientToken: String(p.k)}), {qos: 1}, (error) => {
        if (error) current?.finish(p, `publish: ${error.message}`)
      })
    } else if (leaf === 'shadow/update/accepted') {
      const body = JSON.parse(payload.toString('utf8'))
      const p = dev.pending
      if (!p || body.clientToken !== String(p.k)) return void counters.strayAccepted++
      p.tAcc = t
      current?.finish(p, null)
    } else if (leaf === 'shadow/update/rejected') {
      counters.rejected++
      const body = JSON.parse(payload.toString('utf8'))
      const p = dev.pending
      if (p && body.clientToken === String(p.k)) current?.finish(p, `update/rejected ${body.code}: ${body.message}`)
    }
  }

  return {
    pid: process.pid,

    /** Connect every device (`concurrency` handshakes at a time; refused CONNACKs, e.g. the connect-rate limit, are retried). */
    async connect({url, devices: list, trust, concurrency = 25}) {
      const start = now()
      let retries = 0
      let next = 0
      const connectOne = async (d) => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await mqtt.connectAsync(url, {clientId: d.id, cert: d.cert, key: d.key, ca: trust, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 30_000})
          } catch (error) {
            if (attempt >= 20) throw new Error(`${d.id} could not connect: ${error.message}`)
            retries++
            await sleep(100 + Math.random() * 400)
          }
        }
      }
      const worker = async () => {
        while (next < list.length) {
          const d = list[next++]
          const client = await connectOne(d)
          const dev = {id: d.id, client, prefix: `devices/${d.id}/`, updateTopic: `devices/${d.id}/shadow/update`, lastVersion: 0, pending: null}
          client.on('message', (topic, payload) => onMessage(dev, topic, payload))
          client.on('close', () => counters.closes++)
          client.on('error', () => undefined) // counted by 'close'; reconnectPeriod 0 keeps it down
          await client.subscribeAsync(['shadow/delta', 'shadow/update/accepted', 'shadow/update/rejected'].map((leaf) => dev.prefix + leaf), {qos: 1})
          devices.push(dev)
        }
      }
      await Promise.all(Array.from({length: Math.min(concurrency, list.length)}, worker))
      return {connectMs: now() - start, retries, connected: devices.length}
    },

    /**
     * One run of `durationMs`: paced (`rate` round trips/s scheduled open-loop, each started when
     * due if a device is idle) or closed-loop (`inFlight` round trips kept in flight, as fast as they
     * complete). Then waits for the round trips in flight (each gives up after `timeoutMs`).
     * Returns one record per round trip started: times are epoch ms (now()).
     */
    async run({rate, inFlight, durationMs, timeoutMs = 15_000}) {
      resetCounters()
      poolProbe.reset()
      loop.reset()
      const idle = devices.map((_, i) => i) // FIFO of idle device indexes
      let head = 0
      const records = []
      let inflight = 0
      let stopping = false
      let drained
      const start = now()
      const end = start + durationMs
      const fill = () => {
        while (!stopping && inflight < inFlight && head < idle.length) begin(start)
      }
      const finish = (p, error) => {
        const dev = devices[p.d]
        if (dev.pending !== p) return
        clearTimeout(p.timer)
        dev.pending = null
        p.error = error
        inflight--
        idle.push(p.d)
        if (head > 4096 && head * 2 > idle.length) {
          idle.splice(0, head)
          head = 0
        }
        if (!rate) fill()
        if (stopping && inflight === 0) drained?.()
      }
      current = {finish}
      const begin = (scheduled) => {
        const d = idle[head++]
        const k = ++counter
        const dev = devices[d]
        const p = {k, d, scheduled, t0: now(), tCommit: 0, tDelta: 0, tAcc: 0, error: null}
        records.push(p)
        dev.pending = p
        inflight++
        p.timer = setTimeout(() => {
          if (DEBUG) process.stderr.write(`timeout k=${k} ${dev.id} t0=${p.t0.toFixed(1)} commit=${p.tCommit.toFixed(1)} delta=${p.tDelta.toFixed(1)}\n  ${(dev.log ?? []).slice(-8).join('\n  ')}\n`)
          finish(p, 'timeout')
        }, timeoutMs)
        setDesired(db, dev.id, desiredFor(k)).then(() => (p.tCommit = now()), (error) => finish(p, `setDesired: ${error.message}`))
      }
      if (rate) {
        let issued = 0
        const scheduleTotal = Math.floor((durationMs * rate) / 1000)
        while (now() < end && issued < scheduleTotal) {
          const due = Math.min(scheduleTotal, Math.floor(((now() - start) * rate) / 1000) + 1)
          while (issued < due && inflight < inFlight && head < idle.length) begin(start + (issued++ * 1000) / rate)
          await sleep(1)
        }
      } else {
        fill()
        await sleep(Math.max(0, end - now()))
      }
      const issueEnd = now()
      stopping = true
      if (inflight > 0) await new Promise((resolve) => (drained = resolve))
      current = undefined
      const mem = process.memoryUsage()
      return {
        start, end: issueEnd, durationMs,
        // Compact: one array per field.
        records: {
          k: records.map((p) => p.k), d: records.map((p) => p.d), scheduled: records.map((p) => p.scheduled), t0: records.map((p) => p.t0),
          tCommit: records.map((p) => p.tCommit), tDelta: records.map((p) => p.tDelta), tAcc: records.map((p) => p.tAcc), error: records.map((p) => p.error),
        },
        counters: {...counters},
        pool: poolProbe.take(),
        eventLoop: {p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6},
        memory: {rss: mem.rss, maxRSSKiB: process.resourceUsage().maxRSS},
        ids: devices.map((dev) => dev.id),
      }
    },

    async profileStart() {
      stopProfile = await startProfile()
    },
    async profileStop(file) {
      const summary = await stopProfile?.(file)
      stopProfile = undefined
      return summary
    },

    async close() {
      await Promise.all(devices.map((dev) => dev.client.endAsync(true).catch(() => undefined)))
      devices.length = 0
      poolProbe.stop()
      loop.disable()
      await pool.end()
      return {maxRSSKiB: process.resourceUsage().maxRSS}
    },
  }
}

/**
 * The load generator in this process ('inline') or in a child process ('child', the default: its
 * own event loop, as devices and operators would be elsewhere). Same methods either way, all async.
 */
export async function openLoad(mode, options) {
  if (mode === 'inline') return {mode, ...(await createLoad(options)), exit: async () => undefined}
  if (mode !== 'child') throw new Error(`--load must be child or inline, got ${JSON.stringify(mode)}`)
  const {fork} = await import('node:child_process')
  const {fileURLToPath} = await import('node:url')
  const entry = fileURLToPath(new URL('./shadow-child.mjs', import.meta.url))
  const child = fork(entry, [], {stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced'})
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  const waiting = new Map()
  let next = 0
  child.on('message', ({id, result, error}) => {
    const w = waiting.get(id)
    waiting.delete(id)
    if (error) w?.reject(new Error(`load generator: ${error}`))
    else w?.resolve(result)
  })
  child.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`load generator exited (code ${code}, signal ${signal})`))
    waiting.clear()
  })
  const call = (cmd, ...args) => new Promise((resolve, reject) => {
    const id = ++next
    waiting.set(id, {resolve, reject})
    child.send({id, cmd, args})
  })
  await call('init', options)
  return {
    mode, pid: child.pid,
    connect: (a) => call('connect', a),
    run: (a) => call('run', a),
    profileStart: () => call('profileStart'),
    profileStop: (file) => call('profileStop', file),
    close: () => call('close'),
    async exit() {
      process.off('exit', kill)
      if (child.exitCode !== null) return
      child.disconnect()
      await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))
    },
  }
}
