// Instruments of the rollout benchmark: a timeline of every statement a pg pool runs (start, end,
// connection, SQL), turned into the controller's steps and their parts; and an in-process broker
// subscriber that counts firmware assignments (distinct devices, first and last arrival).
import {now} from './shadow-probe.mjs'

/**
 * Record every statement of every client the pool hands out (pool.query and transactions alike):
 * {sql, values, start, end, client}. `take()` returns them sorted by start.
 */
export function recordStatements(pool) {
  let events = []
  let clients = 0
  const wrap = (client) => {
    if (client.__rolloutWrapped) return
    client.__rolloutWrapped = true
    const id = ++clients
    const query = client.query.bind(client)
    client.query = (config, values, callback) => {
      const sql = typeof config === 'string' ? config : config?.text ?? ''
      const event = {sql, values: Array.isArray(values) ? values : config?.values, start: now(), end: NaN, client: id}
      events.push(event)
      const done = () => void (event.end = now())
      if (typeof values === 'function') return query(config, (e, r) => (done(), values(e, r)))
      if (typeof callback === 'function') return query(config, values, (e, r) => (done(), callback(e, r)))
      const result = query(config, values)
      if (result && typeof result.then === 'function') return result.finally(done)
      return result
    }
  }
  pool.on('connect', wrap)
  return {
    reset: () => void (events = []),
    take: () => [...events].sort((a, b) => a.start - b.start),
  }
}

// The controller's statements (dist/lib/rollout/controller.js, dispatch.js; dist/lib/shadow/store.js).
const IS = {
  stepStart: /^SELECT name FROM rollouts r WHERE state IN/,
  begin: /^BEGIN$/,
  commit: /^COMMIT$/,
  readRollout: /^SELECT r\.name, r\.firmware_id.*FOR UPDATE OF r/s,
  timeOut: /^UPDATE rollout_targets t SET state = CASE WHEN t\.state = 'dispatched'/,
  countTargets: /^SELECT stage, state, count\(\*\)::int AS n FROM rollout_targets/,
  // only with --rate: the sliding-window count (older builds: the last minute)
  lastMinute: /^SELECT count\(\*\)::int AS n,? .*FROM rollout_targets\s+WHERE rollout = \$1 AND dispatched_at >/s,
  // `UPDATE … WHERE device_id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)`, or since 170dc1f a MATERIALIZED CTE
  claim: /^(WITH picked AS MATERIALIZED .*)?UPDATE rollout_targets (t )?SET state = 'dispatched'/s,
  shadowInsert: /^INSERT INTO shadows \(device_id, document, version\) SELECT unnest/,
  shadowLock: /^SELECT device_id, document FROM shadows WHERE device_id = ANY\(\$1::text\[\]\) ORDER BY device_id FOR UPDATE/,
  shadowUpdate: /^UPDATE shadows s SET document = u\.document/,
  shadowHistory: /^INSERT INTO shadow_history/,
  notify: /^SELECT pg_notify/,
  logEvent: /^INSERT INTO rollout_events/,
  openTargets: /^SELECT t\.rollout, t\.device_id, .* t\.dispatched_at IS NOT NULL AND t\.published_at IS NULL/s,
  markPublished: /^UPDATE rollout_targets SET published_at = now\(\)/,
}
const kindOf = (sql) => {
  const s = sql.replace(/\s+/g, ' ').trim()
  for (const [kind, re] of Object.entries(IS)) if (re.test(s)) return kind
  return 'other'
}

/** Parts of a step, in the order the report prints them. */
export const PARTS = [
  ['select', 'find active rollouts'],
  ['publishLeftover', 'publishCommitted before advance (finds nothing)'],
  ['txRead', 'tx: BEGIN, lock rollout, time-outs, health gates, counts'],
  ['lastMinute', 'tx: count dispatched in the rate window (only with --rate)'],
  ['claim', 'tx: claim targets (UPDATE rollout_targets … RETURNING)'],
  ['shadowInsert', 'tx: setDesiredForDevices: INSERT missing shadows'],
  ['shadowLock', 'tx: setDesiredForDevices: SELECT documents FOR UPDATE'],
  ['shadowJs', 'tx: setDesiredForDevices: JS merge (applyDesiredToRows, until its UPDATE starts)'],
  ['shadowUpdate', 'tx: setDesiredForDevices: UPDATE shadows FROM jsonb_to_recordset'],
  ['shadowHistory', 'tx: setDesiredForDevices: INSERT shadow_history'],
  ['notify', 'tx: setDesiredForDevices: pg_notify (2 channels)'],
  ['logEvent', 'tx: log event'],
  ['commit', 'tx: COMMIT'],
  ['openTargets', 'publish: read the claimed targets (SELECT … JOIN firmware)'],
  ['sealPublish', 'publish: seal (sign) + broker.publish of the page (Promise.all)'],
  ['markPublished', 'publish: UPDATE published_at'],
  ['rest', 'other (gaps between statements)'],
]

/**
 * The controller's steps from a statement timeline: a step begins with "SELECT name FROM rollouts"
 * and ends with the last controller statement before the next one. Statements of other services
 * on the same pool (the shadow sync's reads) are ignored. Only steps that dispatched are returned.
 */
export function controllerSteps(events) {
  const steps = []
  let cur
  let afterCommit = false
  let lastOpen
  for (const e of events) {
    const kind = kindOf(e.sql)
    if (kind === 'stepStart') {
      cur = {start: e.start, end: e.end, client: undefined, parts: Object.fromEntries(PARTS.map(([k]) => [k, 0])), claimed: 0, pages: 0, published: 0, marks: []}
      cur.parts.select += e.end - e.start
      steps.push(cur)
      afterCommit = false
      lastOpen = undefined
      continue
    }
    if (!cur) continue
    if (kind === 'begin') {
      if (cur.client !== undefined) continue // another service's transaction
      cur.client = e.client
      cur.txStart = e.start
      cur.parts.txRead += e.end - e.start
    } else if (e.client === cur.client && !afterCommit) {
      // inside the advance transaction
      const d = e.end - e.start
      if (kind === 'commit') {
        cur.parts.commit += d
        afterCommit = true
        cur.commitEnd = e.end
      } else if (kind === 'claim') {
        cur.parts.claim += d
        cur.claimEnd = e.end
      } else if (kind === 'shadowLock') {
        cur.parts.shadowLock += d
        cur.lockEnd = e.end
      } else if (kind === 'shadowUpdate') {
        cur.parts.shadowUpdate += d
        if (cur.lockEnd) cur.parts.shadowJs += e.start - cur.lockEnd
      } else if (['shadowInsert', 'shadowHistory', 'notify', 'lastMinute'].includes(kind)) {
        cur.parts[kind] += d
      } else if (kind === 'logEvent') {
        cur.parts.logEvent += d
      } else {
        cur.parts.txRead += d
      }
    } else if (kind === 'openTargets') {
      cur.parts[cur.client === undefined ? 'publishLeftover' : 'openTargets'] += e.end - e.start
      lastOpen = e
      cur.pages++
    } else if (kind === 'markPublished') {
      cur.parts.markPublished += e.end - e.start
      if (lastOpen) cur.parts.sealPublish += e.start - lastOpen.end
      lastOpen = undefined
    } else {
      continue // the shadow sync, presence, anything else sharing the pool
    }
    cur.end = Math.max(cur.end, e.end)
  }
  const dispatched = steps.filter((s) => s.parts.claim > 0)
  for (const s of dispatched) {
    const accounted = PARTS.filter(([k]) => k !== 'rest').reduce((sum, [k]) => sum + s.parts[k], 0)
    s.parts.rest = Math.max(0, s.end - s.start - accounted)
  }
  return {all: steps, dispatched}
}

/**
 * Count firmware assignments at the broker (an in-process subscriber on devices/+/firmware): every
 * message, distinct devices, the time of the first and of the last new device, arrivals per 100 ms.
 * And shadow deltas (devices/+/shadow/delta), the sync service's concurrent work.
 */
export async function countAtBroker(broker) {
  const seen = new Set()
  const state = {messages: 0, first: NaN, last: NaN, deltas: 0, firstDelta: NaN, lastDelta: NaN, buckets: new Map(), samples: []}
  await broker.subscribe('devices/+/firmware', (topic, payload, done) => {
    const t = now()
    state.messages++
    const id = topic.slice(8, topic.length - 9)
    if (!seen.has(id)) {
      seen.add(id)
      if (Number.isNaN(state.first)) state.first = t
      state.last = t
      const b = Math.floor(t / 100)
      state.buckets.set(b, (state.buckets.get(b) ?? 0) + 1)
      if (seen.size === 1 || seen.size % 25_000 === 0) state.samples.push({id, payload: Buffer.from(payload)})
    }
    done()
  })
  await broker.subscribe('devices/+/shadow/delta', (_topic, _payload, done) => {
    const t = now()
    state.deltas++
    if (Number.isNaN(state.firstDelta)) state.firstDelta = t
    state.lastDelta = t
    done()
  })
  return {
    state,
    get devices() {
      return seen.size
    },
    lastSample: () => state.samples.at(-1),
  }
}
