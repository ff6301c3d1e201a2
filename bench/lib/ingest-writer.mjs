// The ingest without any broker (`--only writer`): messages handed straight to
// TelemetryService.handle(), to measure the writer's own ceiling with iotctl's batching and with the
// group-commit what-if (ingest-whatif.mjs), alternating in one process so machine load hits both.
import {now} from './ingest-load.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const tick = () => new Promise((r) => setImmediate(r))
const payload = (sent, ts, seq) => Buffer.from(`{"sent":${sent.toFixed(3)},"ts":${ts},"seq":${seq},"metrics":{"temperature":21.5,"humidity":40}}`)

/**
 * Hand `count` messages to `handle`, round-robin over the devices: all at once (1,000 per event-loop
 * turn) or, with `rate`, open loop at that rate (`sent` = the scheduled time). Resolves when every
 * handle() promise has (i.e. everything is committed).
 */
export async function feed(handle, {ids, count, rate, base, T0}) {
  const topics = ids.map((id) => `devices/${id}/telemetry`)
  const start = now()
  const all = new Array(count)
  let k = 0
  while (k < count) {
    const due = rate ? Math.min(count, Math.floor(((now() - start) * rate) / 1000) + 1) : Math.min(count, k + 1000)
    for (; k < due; k++) {
      const seq = base + k
      all[k] = handle(topics[k % topics.length], payload(rate ? start + (k * 1000) / rate : now(), T0 + seq, seq))
    }
    await (rate ? sleep(1) : tick())
  }
  await Promise.all(all)
  return {start, end: now()}
}
