// The ingest benchmark's load generator: N devices, each an mqtt.js client with its own certificate
// and TLS 1.3 session, publishing telemetry. Used in the benchmark's own process (default) or in a
// child process (bench/lib/ingest-publisher-child.mjs, --publishers child).
//
// Every payload starts with the publish time: {"sent":<epoch ms>,"ts":…,"seq":…,"metrics":{…}}.
// parseTelemetry ignores unknown fields, so the ingest stores it like any message; the benchmark's
// wrapper around handle() reads `sent` back (sentOf) to time publish → commit. `ts` stays a unique
// timestamp per message (T0 + seq, 1 ms apart), so every message is a new row.

/** Epoch milliseconds with sub-millisecond precision; comparable across processes on one machine. */
export const now = () => performance.timeOrigin + performance.now()

const PREFIX = Buffer.byteLength('{"sent":')

/** The publish time written by `payload`, read without parsing the JSON. */
export function sentOf(payload) {
  return Number(payload.toString('latin1', PREFIX, payload.indexOf(44, PREFIX)))
}

const payload = (sent, ts, seq) =>
  `{"sent":${sent.toFixed(3)},"ts":${ts},"seq":${seq},"metrics":{"temperature":21.5,"humidity":40}}`

export async function connectPublishers({mqtt, url, devices, trust, protocolVersion = 4}) {
  const clients = []
  const state = {closes: 0}
  const start = now()
  for (const d of devices) {
    const client = await mqtt.connectAsync(url, {clientId: d.clientId, cert: d.cert, key: d.key, ca: trust, reconnectPeriod: 0, protocolVersion})
    client.on('close', () => state.closes++)
    client.on('error', () => undefined) // counted by 'close'; reconnectPeriod 0 keeps a dropped client down
    clients.push(client)
  }
  return {clients, state, topics: devices.map((d) => `devices/${d.clientId}/telemetry`), connectMs: now() - start}
}

const tick = () => new Promise((resolve) => setImmediate(resolve))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * One run: every device publishes `perDevice` messages (seq = base + i·devices + d; ts = T0 + seq).
 * - burst (no rate): QoS 0 as fast as the clients take them (yielding to the event loop every 100
 *   messages per device); QoS 1 with a sliding window of `window` unacknowledged messages per device.
 *   `sent` is the moment of the publish call.
 * - paced (`rate` msgs/s in total, open loop): message k goes out at start + k/rate, round-robin over
 *   the devices, no window. `sent` is the SCHEDULED time, so a publisher that falls behind shows up
 *   in the latency instead of hiding it.
 * Resolves when every publish has completed (QoS 0: written to the socket; QoS 1: PUBACK).
 */
export async function publishRun({clients, topics, state}, {qos, perDevice, window = 50, rate, base, T0}) {
  const n = clients.length
  const closes = state.closes
  const start = now()
  if (!rate) {
    await Promise.all(clients.map(async (client, d) => {
      const pending = new Array(perDevice)
      for (let i = 0; i < perDevice; i++) {
        if (qos === 1 && i >= window) await pending[i - window]
        else if (qos === 0 && i % 100 === 99) await tick()
        const seq = base + i * n + d
        pending[i] = client.publishAsync(topics[d], payload(now(), T0 + seq, seq), {qos})
        pending[i].catch(() => undefined) // an abandoned run's publishes fail when its clients are closed
      }
      await Promise.all(pending)
    }))
  } else {
    const total = perDevice * n
    const all = new Array(total)
    let k = 0
    while (k < total) {
      const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1)
      for (; k < due; k++) {
        const d = k % n
        const seq = base + k
        all[k] = clients[d].publishAsync(topics[d], payload(start + (k * 1000) / rate, T0 + seq, seq), {qos})
        all[k].catch(() => undefined)
      }
      await sleep(1)
    }
    await Promise.all(all)
  }
  return {start, end: now(), count: perDevice * n, disconnects: state.closes - closes}
}

export async function closePublishers({clients}) {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)))
}
