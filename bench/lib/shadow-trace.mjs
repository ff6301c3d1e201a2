// Server-side timestamps in the broker process, for the shadow benchmark's timing breakdown. It
// wraps what startDevBroker() returns (the sync service calls them through these objects):
//   services.broker.publish  → when the service published the delta of round trip k / the
//                              accepted answer for k, and when the broker confirmed each delta;
//   services.shadow.handle   → when the device's report for k reached the sync service;
// and LISTENs on the service's NOTIFY channel itself (a second listener, same PostgreSQL) to see
// when the commit's notification arrives. Reading k costs a regex per message.
import {now} from './shadow-probe.mjs'

const RT = /"rt":(\d+)/
const TOKEN = /"clientToken":"(\d+)"/

export async function traceServices(services, {listen, url, channel}) {
  let t
  const reset = () => {
    t = {deltaPub: new Map(), accPub: new Map(), updIn: new Map(), notifies: new Map(),
      deltas: 0, clears: 0, publishMs: 0, firstDelta: 0, lastDelta: 0, notifyCount: 0, notifyIds: 0}
  }
  reset()
  const broker = services.broker
  const publish = broker.publish.bind(broker)
  broker.publish = (topic, payload, options) => {
    const start = now()
    const isDelta = topic.endsWith('/shadow/delta')
    const done = publish(topic, payload, options)
    // Round trip k's events are stamped when the service CALLS publish (it has decided to send);
    // the broker's callback can come after the subscriber already got the message.
    if (isDelta && payload.length > 0) {
      const m = RT.exec(String(payload))
      if (m && !t.deltaPub.has(Number(m[1]))) t.deltaPub.set(Number(m[1]), start)
    } else if (topic.endsWith('/shadow/update/accepted')) {
      const m = TOKEN.exec(String(payload))
      if (m) t.accPub.set(Number(m[1]), start)
    }
    return done.then(() => {
      if (!isDelta) return
      const end = now()
      t.deltas++
      t.publishMs += end - start
      if (!t.firstDelta) t.firstDelta = end
      t.lastDelta = end
      if (payload.length === 0) t.clears++
    })
  }
  const shadow = services.shadow
  const handle = shadow.handle.bind(shadow)
  shadow.handle = (topic, payload) => {
    if (topic.endsWith('/shadow/update')) {
      const m = TOKEN.exec(payload.toString('latin1'))
      if (m) t.updIn.set(Number(m[1]), now())
    }
    return handle(topic, payload)
  }
  // `listen` undefined (--no-listener): no 2nd LISTEN session, no NOTIFY stage in the breakdown.
  const listener = listen && await listen(url, channel, (payload) => {
    const at = now()
    t.notifyCount++
    for (const id of payload.split(',')) {
      t.notifyIds++
      const list = t.notifies.get(id)
      if (list) list.push(at)
      else t.notifies.set(id, [at])
    }
  })
  return {
    reset,
    get data() {
      return t
    },
    /** The first notification for device `id` at or after `after` (its setDesired's commit). */
    notifyAfter(id, after) {
      const list = t.notifies.get(id)
      if (!list) return 0
      for (const at of list) if (at >= after) return at
      return 0
    },
    close: async () => listener?.close(),
  }
}
