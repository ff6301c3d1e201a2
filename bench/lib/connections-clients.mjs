// The device side of bench/connections.mjs: one mqtt.js client per certificate, opened with bounded
// concurrency, each timed from mqtt.connect() to its TLS handshake and to its CONNACK.
import {createSecureContext} from 'node:tls'
import {msSince} from './stats.mjs'

/**
 * Each device's TLS context (its certificate and key, the broker's trust), built before the timed
 * window: a device has its credentials loaded before it dials, and building 10k OpenSSL contexts
 * (≈ 2.7 ms each here) would otherwise be measured as connect time on the shared cores.
 */
export async function prepareContexts(certs, trust) {
  const contexts = new Array(certs.length)
  for (let i = 0; i < certs.length; i++) {
    contexts[i] = createSecureContext({cert: certs[i].certificate + certs[i].chain, key: certs[i].private_key, ca: trust})
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve))
  }
  return contexts
}

/**
 * Connect one client. Resolves (never rejects) with {client, ok, ms, tlsMs, error}: ok means a
 * CONNACK with return code 0 arrived. A failed client is closed at once.
 */
function connectOne(mqtt, {url, cert, context, trust, keepalive, timeoutMs}, held) {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint()
    let tlsMs = NaN
    let settled = false
    const tls = context ? {secureContext: context} : {cert: cert.certificate + cert.chain, key: cert.private_key, ca: trust}
    const client = mqtt.connect(url, {clientId: cert.record.subject_name, ...tls, protocolVersion: 4, keepalive, reconnectPeriod: 0, connectTimeout: timeoutMs, clean: true})
    client.stream?.once('secureConnect', () => (tlsMs = msSince(start)))
    const settle = (result) => {
      if (settled) return
      settled = true
      if (!result.ok) client.end(true)
      resolve({client: result.ok ? client : null, tlsMs, ...result})
    }
    client.once('connect', (connack) => {
      const ok = connack.returnCode === 0
      if (ok) held.add(client)
      settle({ok, ms: msSince(start), error: ok ? undefined : `CONNACK ${connack.returnCode}`})
    })
    // After the CONNACK an 'error' must still have a listener (EventEmitter throws otherwise).
    client.on('error', (error) => settle({ok: false, error: error.code ? `${error.code}: ${error.message}` : error.message}))
    client.on('close', () => {
      if (held.delete(client)) held.dropped.push({id: cert.record.subject_name, afterMs: msSince(start)})
      settle({ok: false, error: 'closed before CONNACK'})
    })
  })
}

/** The live clients; `dropped` lists those closed after their CONNACK. */
export const newHeldSet = () => Object.assign(new Set(), {dropped: []})

/**
 * Open one client per certificate (with its prepared TLS context when `contexts` is given; else
 * mqtt.js builds one from the PEMs inside the timed connect), at most `concurrency` in flight. Returns the timing
 * of every attempt and the live set (`held`, whose `dropped` lists clients closed after CONNACK).
 */
export async function openClients(mqtt, {port, certs, contexts, trust, concurrency, keepalive, timeoutMs = 60_000, onProgress, held = newHeldSet()}) {
  const results = new Array(certs.length)
  const url = `mqtts://127.0.0.1:${port}`
  let next = 0
  let done = 0
  const start = process.hrtime.bigint()
  const worker = async () => {
    while (next < certs.length) {
      const i = next++
      results[i] = await connectOne(mqtt, {url, cert: certs[i], context: contexts?.[i], trust, keepalive, timeoutMs}, held)
      if (++done % 1000 === 0) onProgress?.(done, msSince(start))
    }
  }
  await Promise.all(Array.from({length: Math.min(concurrency, certs.length)}, worker))
  return {results, held, windowMs: msSince(start)}
}

/** End every client (forced: no DISCONNECT round trips), in slices so the event loop keeps up. */
export async function closeClients(clients) {
  const list = [...clients]
  for (let i = 0; i < list.length; i += 500) {
    await Promise.all(list.slice(i, i + 500).map((c) => new Promise((resolve) => c.end(true, {}, resolve))))
  }
}

/** Failure reasons with their counts, most frequent first: "ECONNRESET ×12, CONNACK 3 ×4". */
export function failureSummary(results) {
  const counts = new Map()
  for (const r of results) if (!r.ok) counts.set(r.error, (counts.get(r.error) ?? 0) + 1)
  return [...counts].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e} ×${n}`).join(', ')
}
