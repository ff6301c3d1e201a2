import {invalidInput, unavailable} from '../core/errors.js'
import {acknowledgeAfter, connectMqtt, type TlsIdentity} from './client.js'

export interface ServiceSubscriberOptions {
  brokerUrl: string
  /** The session name; with Mosquitto's use_username_as_clientid it is the certificate's CN. */
  clientId: string
  tls?: TlsIdentity
  /**
   * Topic filters, each with the group that shares it among workers when `shared`:
   * `$share/GROUP/filter` (MQTT 5 §4.8.2; Mosquitto and EMQX accept it on 3.1.1 too).
   */
  topics: ReadonlyArray<{filter: string; group: string}>
  /** Share the load with the groups' other workers. */
  shared: boolean
  protocolVersion?: 4 | 5
  /** Resolves when the message is done (stored, answered); its QoS 1 PUBACK is sent only then. */
  handle(topic: string, payload: Buffer): Promise<void>
  log: (line: string) => void
}

export interface ServiceSubscriber {
  connects(): number
  publish(topic: string, payload: string, options: {qos: 0 | 1; retain: boolean}): Promise<void>
  /** Wait for the PUBACKs of finished work, then leave (the persistent session stays at the broker). */
  close(): Promise<void>
}

/**
 * A service's session on an external broker: persistent (clean = false) at QoS 1, so messages wait
 * at the broker while the service restarts, each acknowledged only after `handle` finished it.
 */
export async function startServiceSubscriber(options: ServiceSubscriberOptions): Promise<ServiceSubscriber> {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(options.clientId)) {
    throw invalidInput('E_CLIENT_ID', `invalid client id ${JSON.stringify(options.clientId)}`, {hint: 'use letters, digits, ".", "_" and "-" (the service certificate\'s name)'})
  }
  const managed = await connectMqtt({
    url: options.brokerUrl, clientId: options.clientId, tls: options.tls, clean: false,
    protocolVersion: options.protocolVersion, receiveMaximum: 2000, log: options.log,
  })
  const acks = acknowledgeAfter(managed.client, options.handle)
  const share = (t: {filter: string; group: string}) => `$share/${t.group}/${t.filter}`
  const filters = options.topics.map((t) => (options.shared ? share(t) : t.filter))
  try {
    const granted = await managed.client.subscribeAsync(filters, {qos: 1})
    const refused = granted.filter((g) => g.qos !== 0 && g.qos !== 1 && g.qos !== 2)
    if (refused.length > 0) {
      throw unavailable('E_SUBSCRIBE_REFUSED', `the broker refused ${refused.map((g) => g.topic).join(', ')}`, {
        hint: 'the service identity needs read access to devices/# (see `iotctl broker config mosquitto`), and --shared needs a broker with shared subscriptions',
      })
    }
    // The session is persistent: a worker switched between shared and not keeps its old
    // subscription at the broker, and would get every message twice. Drop the other form.
    await managed.client.unsubscribeAsync(options.topics.map((t) => (options.shared ? t.filter : share(t))))
  } catch (error) {
    await managed.close().catch(() => undefined)
    throw error
  }
  options.log(`subscribed to ${filters.join(', ')} as ${options.clientId} (persistent session, QoS 1, PUBACK when done)`)
  return {
    connects: () => managed.connects,
    publish: async (topic, payload, o) => {
      await managed.client.publishAsync(topic, payload, o)
    },
    close: async () => {
      await acks.drain()
      await managed.close()
    },
  }
}
