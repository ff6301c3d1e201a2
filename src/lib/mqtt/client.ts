import type {IClientOptions, IPublishPacket, MqttClient} from 'mqtt'
import {unavailable} from '../core/errors.js'
import {maskUrl} from '../core/url.js'

/** The identity a service presents: PEM certificate (with chain), key, and the CAs it trusts. */
export interface TlsIdentity {
  cert: string
  key: string
  ca: string
}

export interface MqttConnectOptions {
  url: string
  clientId: string
  tls?: TlsIdentity
  /** false: a persistent session, so QoS 1 messages wait at the broker while this client is away. */
  clean?: boolean
  /** 4 = MQTT 3.1.1 (every broker, aedes included), 5 = MQTT 5. */
  protocolVersion?: 4 | 5
  keepaliveSeconds?: number
  /** MQTT 5 Receive Maximum (§3.1.2.11.3): QoS 1 messages the broker may have in flight to us. */
  receiveMaximum?: number
  /** Reconnect backoff with full jitter: random(0, min(cap, base · 2^attempt)). */
  backoff?: {baseMs: number; capMs: number}
  log?: (line: string) => void
}

export interface ManagedClient {
  readonly client: MqttClient
  /** Connections made so far (1 after the first CONNACK). */
  readonly connects: number
  close(): Promise<void>
}

/** Full-jitter backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** attempt))
}

export interface ReconnectingOptions extends MqttConnectOptions {
  /** Last Will (MQTT 3.1.1 §3.1.2.5): published by the broker if this client drops unannounced. */
  will?: {topic: string; payload: string; qos: 0 | 1; retain: boolean}
  /** Called at every connection attempt (the first included), with Date.now(). */
  onAttempt?: (at: number) => void
  /** false: if the very first attempt fails, give up (the caller reports it). Default true. */
  retryFirst?: boolean
}

/**
 * A client that keeps (re)connecting with full-jitter backoff, from the first attempt on: mqtt.js'
 * fixed `reconnectPeriod` is off, since a fleet reconnecting in lockstep after a broker restart is
 * a thundering herd. QoS 1 publishes made while disconnected wait in mqtt.js' queue.
 */
export async function startReconnectingClient(options: ReconnectingOptions): Promise<ManagedClient> {
  const {default: mqtt} = await import('mqtt')
  const log = options.log ?? (() => undefined)
  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    clean: options.clean ?? true,
    protocolVersion: options.protocolVersion ?? 4,
    keepalive: options.keepaliveSeconds ?? 30,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(options.tls ? {cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca, rejectUnauthorized: true} : {}),
    // MQTT 5 ends a session at disconnect unless it has a Session Expiry Interval (§3.1.2.11.2):
    // a persistent service session keeps its queue for a week while its worker restarts.
    ...(options.protocolVersion === 5 ? {properties: {...(options.receiveMaximum ? {receiveMaximum: options.receiveMaximum} : {}),
      ...(options.clean === false ? {sessionExpiryInterval: 7 * 86_400} : {})}} : {}),
    ...(options.will ? {will: {...options.will, payload: Buffer.from(options.will.payload)}} : {}),
  }
  options.onAttempt?.(Date.now())
  const client = mqtt.connect(options.url, clientOptions)
  let connects = 0
  let attempt = 0
  let closing = false
  let timer: NodeJS.Timeout | undefined
  // When mqtt.js itself tears a connection down (CONNACK timeout, CONNACK refused, keepalive
  // timeout) with reconnectPeriod 0 and a clean session, _cleanUp calls _flush, which fails every
  // pending QoS 1 publish with "Connection closed", although the message stays in the outgoing
  // store and is resent, and acknowledged, on the next connection (its PUBACK then reaches no
  // callback). A plain socket drop leaves them pending. Here they always stay pending until our
  // own close(): the caller sees each message's real outcome, once.
  const internal = client as unknown as {_flush: () => void}
  const flush = internal._flush.bind(client)
  internal._flush = () => {
    if (closing) flush()
  }
  const backoff = options.backoff ?? {baseMs: 1000, capMs: 60_000}
  client.on('connect', () => {
    connects++
    attempt = 0
    if (connects > 1) log(`reconnected to ${maskUrl(options.url)} as ${options.clientId}`)
  })
  // Before the first CONNACK of a fail-fast client, the caller reports the error itself.
  client.on('error', (error) => {
    if (connects > 0 || options.retryFirst !== false) log(`MQTT error: ${error.message}`)
  })
  client.on('close', () => {
    if (closing || timer || (connects === 0 && options.retryFirst === false)) return
    const delay = backoffDelay(attempt++, backoff.baseMs, backoff.capMs)
    if (connects > 0) log(`disconnected from ${maskUrl(options.url)}; reconnecting in ${delay} ms`)
    timer = setTimeout(() => {
      timer = undefined
      if (closing) return
      options.onAttempt?.(Date.now())
      // Pass the stores back in: reconnect() without them replaces both with new empty ones
      // (mqtt.js 5, client.js reconnect()), which silently drops every QoS 1 message queued
      // while disconnected or in flight at the drop, and strands their callbacks forever.
      client.reconnect({incomingStore: client.incomingStore, outgoingStore: client.outgoingStore})
    }, delay)
  })
  return {
    client,
    get connects() {
      return connects
    },
    close: async () => {
      closing = true
      clearTimeout(timer)
      // Connected: DISCONNECT after the in-flight QoS 1 messages are acknowledged. Not connected
      // (waiting to retry, or mid-handshake): end at once. A graceful end() would wait for PUBACKs
      // that cannot come, and a CONNACK arriving after it still emits 'connect' on a closed client.
      await client.endAsync(!client.connected)
    },
  }
}

/**
 * Connect a service, failing fast: the first connection must succeed, so a wrong URL or
 * certificate is exit 6 with the reason; later drops reconnect with full-jitter backoff.
 */
export async function connectMqtt(options: MqttConnectOptions): Promise<ManagedClient> {
  const managed = await startReconnectingClient({...options, retryFirst: false})
  const {client} = managed
  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error) => {
      void managed.close()
      reject(unavailable('E_BROKER_UNREACHABLE', `cannot connect to the MQTT broker at ${maskUrl(options.url)}: ${error.message}`, {
        hint: 'check --broker-url, that the broker runs, and that its CA and this service certificate match (mqtts:// needs --identity)',
      }))
    }
    const closed = () => fail(new Error('the connection closed before CONNACK (certificate refused or client id rejected?)'))
    client.once('connect', () => {
      client.removeListener('error', fail)
      client.removeListener('close', closed)
      resolve()
    })
    client.once('error', fail)
    client.once('close', closed)
  })
  return managed
}

type SendPacket = (packet: {cmd: string; messageId?: number}, cb?: () => void, ...rest: unknown[]) => void

/**
 * Acknowledge each QoS 1 message only after `handle` resolved for it (at-least-once processing:
 * a crash before the commit means the broker redelivers).
 *
 * mqtt.js' `handleMessage` alone cannot do this at speed: the client takes the next packet only
 * after the callback (MQTT.js issue #691), so holding it until a commit allows one message per
 * commit. Here the callback returns at once, so messages keep flowing and share batches, and the
 * PUBACK that mqtt.js then writes is held until that message's work is done. PUBACKs still leave
 * in the order the messages arrived ([MQTT-4.6.0-2]), and one held across a reconnect is dropped,
 * never sent on the new connection: there the broker redelivers the message (a persistent
 * session) and the message id may by then name another message.
 */
export function acknowledgeAfter(client: MqttClient, handle: (topic: string, payload: Buffer) => Promise<void>): {drain(): Promise<void>} {
  // mqtt.js has no public hook between handleMessage and the PUBACK: wrap its packet writer.
  const internal = client as unknown as {_sendPacket: SendPacket}
  const send = internal._sendPacket.bind(client)
  const work = new Map<number, Promise<void>>()
  let connection = 0
  let queue = Promise.resolve()
  client.on('connect', () => connection++)
  client.handleMessage = (packet: IPublishPacket, callback) => {
    const done = handle(packet.topic, packet.payload as Buffer)
    if (packet.qos === 1 && packet.messageId !== undefined) work.set(packet.messageId, done)
    callback()
  }
  internal._sendPacket = (packet, cb, ...rest) => {
    const pending = packet.cmd === 'puback' && packet.messageId !== undefined ? work.get(packet.messageId) : undefined
    if (!pending) return send(packet, cb, ...rest)
    work.delete(packet.messageId!)
    const sentOn = connection
    // A failed message is never acknowledged; the broker redelivers it after a reconnect.
    queue = queue.then(() => pending).then(() => {
      if (connection === sentOn && client.connected) send(packet)
    }, () => undefined)
    cb?.() // lets mqtt.js take the next packet now
  }
  /** Resolves when every PUBACK held so far has been sent (or dropped with its connection). */
  return {drain: () => queue}
}
