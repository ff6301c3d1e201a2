import type {MqttClient} from 'mqtt'
import {startReconnectingClient, type ManagedClient, type TlsIdentity} from '../mqtt/client.js'
import {deviceTopic} from '../mqtt/topics.js'
import type {MetricWalk} from './metrics.js'

/** Counters shared by a fleet (plain numbers: one process, one thread). */
export interface FleetCounters {
  sent: number
  acknowledged: number
  reconnects: number
  errors: number
  deltasApplied: number
  commandsAcked: number
  anomalies: number
  connected: number
  otaInstalls: number
  /** Accepted assignments that ended in failed (download, size, checksum, boot). */
  otaFailures: number
  /** Assignments refused by the checks (failed with a check's reason, or rejected). */
  otaRefusals: number
  otaRollbacks: number
  /** Assignments the device went silent on (--ota-hang-rate). */
  otaHangs: number
}

export const newCounters = (): FleetCounters => ({sent: 0, acknowledged: 0, reconnects: 0, errors: 0, deltasApplied: 0, commandsAcked: 0, anomalies: 0, connected: 0,
  otaInstalls: 0, otaFailures: 0, otaRefusals: 0, otaRollbacks: 0, otaHangs: 0})

/** Publish device → cloud on the device's own connection (QoS 1; queued while it is disconnected). */
export type OtaPublish = (leaf: string, body: unknown, retain?: boolean) => void

/**
 * The OTA half of a device (src/lib/simulator/ota.ts): it owns the running firmware version, which
 * the device announces on `status` and which shadow deltas cannot change.
 */
export interface OtaHook {
  readonly firmware: string
  /** A message on devices/{id}/firmware, as received (the signature covers its exact bytes). */
  onAssignment(raw: Buffer, publish: OtaPublish): void
  stop(): void
}

export interface VirtualDeviceOptions {
  id: string
  url: string
  tls: TlsIdentity
  intervalMs: number
  /** Delay of the first telemetry message, so a fleet's messages are spread over the interval. */
  offsetMs: number
  /**
   * The instant offsetMs counts from (default: the first connection). A fleet passes its own start,
   * so devices that connected later in the paced ramp-up keep the fleet's even spread: the first
   * message is at epoch + offset, or at the next multiple of the interval after it.
   */
  epochMs?: number
  walk: MetricWalk
  qos: 0 | 1
  backoff: {baseMs: number; capMs: number}
  counters: FleetCounters
  onAttempt?: (deviceId: string, at: number) => void
  ota?: OtaHook
  log: (line: string) => void
}

const RECEIVES = ['shadow/delta', 'shadow/get/accepted', 'shadow/update/accepted', 'commands', 'firmware'] as const

/**
 * One virtual device following docs/PROTOCOL.md: Will and retained `online` status, telemetry with
 * a per-device sequence number, shadow reconnect rule (subscribe, get, apply only newer versions),
 * command acknowledgements. QoS 1 telemetry published while disconnected waits in mqtt.js' queue.
 */
export class VirtualDevice {
  private managed?: ManagedClient
  private timer?: NodeJS.Timeout
  private seq = 0
  private shadowVersion = 0
  private reported: Record<string, unknown> = {}
  private stopped = false
  /** stop() has begun: no new connection is taken up, no telemetry scheduled. */
  private stopping = false
  /** Telemetry is scheduled (from the first connection on); the next message is due at `due`, epoch + offset + k · interval. */
  private scheduled = false
  private due = 0

  constructor(private readonly o: VirtualDeviceOptions) {}

  get sequence(): number {
    return this.seq
  }

  async start(): Promise<void> {
    const o = this.o
    this.managed = await startReconnectingClient({
      url: o.url, clientId: o.id, tls: o.tls, clean: true, keepaliveSeconds: 60, backoff: o.backoff,
      will: {topic: deviceTopic(o.id, 'status'), payload: JSON.stringify({state: 'offline'}), qos: 1, retain: true},
      onAttempt: (at) => o.onAttempt?.(o.id, at),
    })
    const client = this.managed.client
    client.on('connect', () => this.onConnect(client))
    client.on('close', () => {
      if (this.connectedNow) {
        this.connectedNow = false
        o.counters.connected--
      }
    })
    client.on('message', (topic, payload) => this.onMessage(client, topic, payload))
  }

  /**
   * Telemetry starts after the first CONNACK and `online` (PROTOCOL.md: status online, then
   * telemetry), at the device's slot of the fleet's grid. Only later outages queue telemetry: mqtt.js
   * replays queued QoS 1 messages one PUBACK at a time before it reports the connection, so a device
   * that queued from its start would reach the broker with a backlog and count as connected late.
   */
  private schedule(client: MqttClient): void {
    if (this.scheduled || this.stopping) return
    this.scheduled = true
    const o = this.o
    const now = Date.now()
    this.due = (o.epochMs ?? now) + o.offsetMs
    if (this.due < now) this.due += Math.ceil((now - this.due) / o.intervalMs) * o.intervalMs
    this.timer = setTimeout(() => this.tick(client), this.due - now)
  }

  private connectedNow = false

  private onConnect(client: MqttClient): void {
    // mqtt.js still emits 'connect' for a CONNACK that arrives after end() closed the client's
    // stores; publishing then throws from inside mqtt.js (Store.put on a closed store) and would
    // take the whole simulator down. A stopping device ignores a late connection.
    if (this.stopping) return
    const o = this.o
    if (this.managed!.connects > 1) o.counters.reconnects++
    this.connectedNow = true
    o.counters.connected++
    client.subscribe(RECEIVES.map((leaf) => deviceTopic(o.id, leaf)), {qos: 1}, (error) => {
      if (error) return void o.counters.errors++
      // The reconnect rule: subscribe first, then get, then apply only newer versions.
      this.publish(client, 'shadow/get', {clientToken: `get-${Date.now()}`})
    })
    this.publish(client, 'status', {state: 'online', ...(o.ota ? {firmware: o.ota.firmware} : {}), ts: Date.now()}, true)
    this.schedule(client)
  }

  private publish(client: MqttClient, leaf: string, body: unknown, retain = false): void {
    client.publish(deviceTopic(this.o.id, leaf), JSON.stringify(body), {qos: 1, retain}, (error) => {
      if (error && !this.stopped) this.o.counters.errors++
    })
  }

  private tick(client: MqttClient): void {
    if (this.stopped) return
    const o = this.o
    const {metrics, anomaly} = o.walk.next()
    if (anomaly) o.counters.anomalies++
    const body = JSON.stringify({ts: Date.now(), seq: this.seq++, metrics})
    o.counters.sent++
    client.publish(deviceTopic(o.id, 'telemetry'), body, {qos: o.qos}, (error) => {
      if (error) {
        if (!this.stopped) o.counters.errors++
      } else if (o.qos === 1) {
        o.counters.acknowledged++
      }
    })
    // Keep to the device's own grid (epoch + offset + k · interval) rather than "interval after this
    // tick": timers that fired late together (a busy event loop: TLS handshakes of a large fleet)
    // would otherwise stay together forever, and the fleet's evenly spread load would turn into
    // bursts. Slots missed entirely are skipped, not caught up in a burst.
    this.due += o.intervalMs
    const now = Date.now()
    if (this.due <= now) this.due += Math.ceil((now - this.due + 1) / o.intervalMs) * o.intervalMs
    this.timer = setTimeout(() => this.tick(client), this.due - now)
  }

  private onMessage(client: MqttClient, topic: string, payload: Buffer): void {
    const leaf = topic.slice(`devices/${this.o.id}/`.length)
    if (payload.length === 0) return // a cleared retained delta
    if (leaf === 'firmware') return this.onFirmware(client, payload)
    let body: {version?: number; state?: Record<string, unknown>; id?: string}
    try {
      body = JSON.parse(payload.toString('utf8')) as typeof body
    } catch {
      this.o.counters.errors++
      return
    }
    if (leaf === 'shadow/get/accepted' || leaf === 'shadow/update/accepted') {
      if (typeof body.version === 'number' && body.version > this.shadowVersion) this.shadowVersion = body.version
      const delta = leaf === 'shadow/get/accepted' ? (body.state as {delta?: Record<string, unknown>} | undefined)?.delta : undefined
      if (delta) this.apply(client, delta)
    } else if (leaf === 'shadow/delta') {
      if (typeof body.version !== 'number' || body.version <= this.shadowVersion) return // older than what we hold
      this.shadowVersion = body.version
      if (body.state) this.apply(client, body.state)
    } else if (leaf === 'commands') {
      this.o.counters.commandsAcked++
      this.publish(client, 'commands/ack', {id: body.id ?? null, status: 'succeeded', ts: Date.now()})
    }
  }

  private onFirmware(client: MqttClient, payload: Buffer): void {
    if (!this.o.ota) return this.o.log(`${this.o.id}: firmware assignment ignored (no OTA hook in this simulator)`)
    // A report after stop() began would publish on a closing client (see onConnect).
    this.o.ota.onAssignment(payload, (leaf, body, retain) => {
      if (!this.stopping) this.publish(client, leaf, body, retain)
    })
  }

  /**
   * "Apply" desired values: the device now runs them, and reports so. Except `firmware`: a desired
   * version is installed only through a signed assignment (the OTA hook), and the device reports
   * the version it actually runs, so a delta never makes it claim firmware it does not have.
   */
  private apply(client: MqttClient, delta: Record<string, unknown>): void {
    const rest = {...delta}
    delete rest.firmware
    const report = 'firmware' in delta && this.o.ota ? {...rest, firmware: this.o.ota.firmware} : rest
    if (Object.keys(report).length === 0) return
    this.reported = {...this.reported, ...report}
    this.o.counters.deltasApplied++
    this.publish(client, 'shadow/update', {state: {reported: report}, clientToken: `apply-${this.shadowVersion}`})
  }

  /** Announce offline (retained) and leave cleanly, waiting for in-flight QoS 1 messages. */
  async stop(): Promise<void> {
    this.stopping = true
    clearTimeout(this.timer)
    this.o.ota?.stop()
    const client = this.managed?.client
    if (!client) return
    if (client.connected) {
      const offline = client.publishAsync(deviceTopic(this.o.id, 'status'), JSON.stringify({state: 'offline', ts: Date.now()}), {qos: 1, retain: true})
      await Promise.race([offline.catch(() => undefined), new Promise((r) => setTimeout(r, 5000))])
    }
    this.stopped = true
    await Promise.race([this.managed!.close(), new Promise((r) => setTimeout(r, 5000))])
  }
}
