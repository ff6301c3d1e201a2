import type {Database} from '../db/pool.js'
import {listen, type Listener} from '../db/listen.js'
import {deviceTopic, parseDeviceTopic} from '../mqtt/topics.js'
import {DEFAULT_LIMITS, deltaMessage, parseUpdate, type ShadowDocument, type ShadowLimits} from './document.js'
import {getShadow, hasShadow, SHADOW_CHANNEL, shadowsOf, updateShadow} from './store.js'

/** How the service sends to devices: the embedded broker in-process, or an MQTT client. */
export interface ShadowPublisher {
  publish(topic: string, payload: string, options: {qos: 0 | 1; retain: boolean}): Promise<void>
}

export interface ShadowStats {
  updates: number
  rejected: number
  gets: number
  deltas: number
}

export interface ShadowService {
  readonly stats: ShadowStats
  /** A device message on `shadow/update` or `shadow/get` (others are ignored); never rejects. */
  handle(topic: string, payload: Buffer): Promise<void>
  /** A device (re)connected: republish its delta from the database (retained), so it converges. */
  deviceOnline(deviceId: string): Promise<void>
  /** Start listening for committed changes (NOTIFY) and publishing their deltas. */
  start(): Promise<void>
  /** Publishing done so far is finished; stop listening. */
  stop(): Promise<void>
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

/** What the service takes from devices on an external broker (status: republish deltas on "online"). */
export const SHADOW_TOPICS = ['devices/+/shadow/update', 'devices/+/shadow/get', 'devices/+/status'] as const
export const SHADOW_SHARE_GROUP = 'iotctl-shadow'

function clientTokenOf(payload: Buffer): string | undefined {
  try {
    const token = (JSON.parse(payload.toString('utf8')) as {clientToken?: unknown}).clientToken
    return typeof token === 'string' && token.length <= 64 ? token : undefined
  } catch {
    return undefined
  }
}

/**
 * The shadow sync service (docs/PROTOCOL.md, "Shadows"): applies devices' reported updates in one
 * transaction each and answers on `update/accepted|rejected`, answers `get`, and publishes the delta
 * (QoS 1, retained) after every committed change to it — from PostgreSQL NOTIFY, so changes made by
 * short-lived CLI processes reach devices — and again when a device connects.
 */
export function createShadowService(db: Database, publisher: ShadowPublisher, log: (line: string) => void, limits: ShadowLimits = DEFAULT_LIMITS): ShadowService {
  const stats: ShadowStats = {updates: 0, rejected: 0, gets: 0, deltas: 0}
  let listener: Listener | undefined
  // Delta publishing in batches, one batch at a time: ids that arrive meanwhile join the next
  // batch, each batch reads the current documents once and publishes them in parallel. Batches
  // in order and fresh reads mean a retained delta is never replaced by an older one.
  const waiting = new Set<string>()
  let draining: Promise<void> | undefined
  // Updates of one device apply in arrival order (aedes may hand over one socket read's packets at once).
  const chains = new Map<string, Promise<void>>()
  const inOrder = (id: string, work: () => Promise<void>) => {
    const next = (chains.get(id) ?? Promise.resolve()).then(work).catch((error: Error) => log(`shadow of ${id}: ${error.message}`))
    chains.set(id, next)
    void next.then(() => {
      if (chains.get(id) === next) chains.delete(id)
    })
    return next
  }
  const send = (id: string, leaf: string, body: unknown) => publisher.publish(deviceTopic(id, leaf), JSON.stringify(body), {qos: 1, retain: false})

  async function publishDelta(id: string, document: ShadowDocument | undefined): Promise<void> {
    const message = document && deltaMessage(document)
    stats.deltas++
    // An empty retained message removes the retained delta (MQTT 3.1.1 §3.3.1.3); devices ignore it.
    await publisher.publish(deviceTopic(id, 'shadow/delta'), message ? JSON.stringify(message) : '', {qos: 1, retain: true})
  }

  const drain = async () => {
    while (waiting.size > 0) {
      const batch = [...waiting].slice(0, 2000)
      for (const id of batch) waiting.delete(id)
      try {
        const docs = await shadowsOf(db, batch)
        await Promise.all(batch.map((id) => publishDelta(id, docs.get(id))))
      } catch (error) {
        log(`publishing deltas failed: ${(error as Error).message}`)
      }
    }
    draining = undefined
  }
  const enqueueDeltas = (ids: string[]) => {
    for (const id of ids) waiting.add(id)
    draining ??= drain()
    return draining
  }

  async function update(id: string, payload: Buffer): Promise<void> {
    let body: unknown
    try {
      body = JSON.parse(payload.toString('utf8'))
    } catch {
      stats.rejected++
      return send(id, 'shadow/update/rejected', {code: 400, message: 'the payload is not JSON', timestamp: nowSeconds()})
    }
    const clientToken = clientTokenOf(payload)
    const rejected = (code: number, message: string, extra: object = {}) => {
      stats.rejected++
      return send(id, 'shadow/update/rejected', {code, message, ...extra, ...(clientToken ? {clientToken} : {}), timestamp: nowSeconds()})
    }
    const parsed = parseUpdate(body)
    if ('ok' in parsed) return rejected(parsed.code, `${parsed.path ? `${parsed.path}: ` : ''}${parsed.message}`)
    if ('desired' in parsed.state) return rejected(403, 'a device reports state; desired state is set by operators (iotctl shadow set)')
    // The new delta (usually its clear) is published here, without the NOTIFY round trip.
    const outcome = await updateShadow(db, id, parsed, {actor: 'device', limits, callerPublishesDelta: true})
    if (!outcome.ok) {
      return rejected(outcome.code, `${outcome.path ? `${outcome.path}: ` : ''}${outcome.message}`, outcome.currentVersion === undefined ? {} : {version: outcome.currentVersion})
    }
    stats.updates++
    const doc = outcome.document
    // The retained delta is brought up to date before the answer: a device that got `accepted` and
    // reconnects never finds the delta it just satisfied.
    if (outcome.deltaChanged) await enqueueDeltas([id])
    await send(id, 'shadow/update/accepted', {state: outcome.applied.state, metadata: outcome.applied.metadata, version: doc.version,
      timestamp: doc.timestamp, ...(doc.state.delta ? {delta: doc.state.delta} : {}), ...(clientToken ? {clientToken} : {})})
  }

  async function get(id: string, payload: Buffer): Promise<void> {
    stats.gets++
    const clientToken = clientTokenOf(payload)
    if (!(await hasShadow(db, id))) {
      return send(id, 'shadow/get/rejected', {code: 404, message: `no shadow exists for ${id}`, ...(clientToken ? {clientToken} : {}), timestamp: nowSeconds()})
    }
    const doc = await getShadow(db, id)
    await send(id, 'shadow/get/accepted', {...doc, ...(clientToken ? {clientToken} : {})})
  }

  return {
    stats,
    handle(topic, payload) {
      const parsed = parseDeviceTopic(topic)
      if (!parsed) return Promise.resolve()
      if (parsed.leaf === 'shadow/update') return inOrder(parsed.deviceId, () => update(parsed.deviceId, payload))
      if (parsed.leaf === 'shadow/get') return inOrder(parsed.deviceId, () => get(parsed.deviceId, payload))
      return Promise.resolve()
    },
    deviceOnline: async (deviceId) => {
      if (await hasShadow(db, deviceId).catch(() => false)) await enqueueDeltas([deviceId])
    },
    start: async () => {
      listener = await listen(db.url, SHADOW_CHANNEL, (payload) => void enqueueDeltas(payload.split(',')), {log})
    },
    stop: async () => {
      await listener?.close()
      await Promise.all([draining, ...chains.values()])
    },
  }
}
