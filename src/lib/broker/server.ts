import {conflict} from '../core/errors.js'
import {watch} from 'node:fs'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {AddressInfo} from 'node:net'
import type {Server as TlsServer, TLSSocket, SecureContextOptions} from 'node:tls'
import type {Client} from 'aedes'
import type {Database} from '../db/pool.js'
import {authenticate, maySubscribe, mayPublish, type Identity, type Listener} from './policy.js'
import {packetSizeWatcher} from './packet-limit.js'

export interface BrokerOptions {
  db: Database
  caDir: string
  /** Passphrase of the broker's server key (the CA passphrase). */
  passphrase: string
  host?: string
  devicePort: number
  servicePort: number
  /** How often live sessions are checked against revocations (issue 4: within 5 s). */
  revocationCheckMs?: number
  log?: (line: string) => void
  /** Largest MQTT packet accepted, in bytes (default 64 KiB); larger ones close the connection. */
  maxPacketBytes?: number
  /** New MQTT sessions accepted per second (token bucket); excess gets CONNACK "server unavailable". */
  connectRate?: number
  /**
   * Runs for every authorized device PUBLISH (the Will included) before the broker acknowledges
   * or forwards it; the broker waits for it. aedes writes the QoS 1 PUBACK only after
   * authorizePublish (lib/handlers/publish.js), so a hook that resolves after the database commit
   * makes PUBACK mean "stored". aedes handles the packets of one socket read concurrently, so a
   * device's pipelined messages still share a batch. A rejection closes the device's connection
   * (MQTT 3.1.1 has no PUBACK error code); the device resends after reconnecting.
   */
  beforeAck?: (topic: string, payload: Buffer) => Promise<void>
  /** A device session opened (true) or closed (false). */
  onPresence?: (deviceId: string, online: boolean) => void
  /** Called after a device authenticated with a certificate: rotation supersedes its predecessors. */
  onDeviceAuthenticated?: (identity: Identity) => Promise<void>
}

export interface RunningBroker {
  devicePort: number
  servicePort: number
  /** Sessions open now (devices and services). */
  connections(): number
  /**
   * An in-process subscriber. Note: aedes sends a QoS 1 PUBACK before it delivers the message
   * (lib/handlers/publish.js), so PUBACK means "the broker has it", not "delivered"; `done` only
   * paces delivery. Work that must happen before the PUBACK belongs in `beforeAck`.
   */
  subscribe(topic: string, handler: (topic: string, payload: Buffer, done: () => void) => void): Promise<void>
  /** Publish as the broker itself (services in this process: shadow deltas, answers). */
  publish(topic: string, payload: string | Buffer, options: {qos: 0 | 1; retain: boolean}): Promise<void>
  /** Re-read the CRLs (after `certs crl`) into both listeners. */
  reloadCrls(): Promise<void>
  close(): Promise<void>
}

/** Node's tls wants one CRL per array element; crl-chain.pem holds all three back to back. */
export function splitPem(text: string): string[] {
  return text.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----\n?/g) ?? []
}

async function tlsContext(caDir: string, passphrase: string, listener: Listener): Promise<SecureContextOptions> {
  const read = (name: string) => readFile(join(caDir, name), 'utf8')
  const trust = listener === 'device' ? [await read('device-ca.crt'), await read('root.crt')] : [await read('service-ca.crt'), await read('root.crt')]
  return {
    cert: (await read('server.crt')) + (await read('service-ca.crt')),
    key: await read('server.key'),
    passphrase,
    ca: trust,
    crl: splitPem(await read('crl/crl-chain.pem')),
    minVersion: 'TLSv1.3',
  }
}

/**
 * The embedded broker: aedes behind two TLS 1.3 listeners with client certificates required.
 * Devices connect to `devicePort` (device CA trusted), services to `servicePort` (service CA only).
 * A failed handshake is logged with its reason and the socket destroyed, never silently dropped.
 */
export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const log = options.log ?? (() => undefined)
  const {Aedes} = await import('aedes')
  const tls = await import('node:tls')
  // MQTT 3.1.1 §3.1.3.1 lets a server accept client ids beyond 23 characters; device ids have 64,
  // and service sessions add a suffix to their CN.
  const broker = await Aedes.createBroker({maxClientsIdLength: 128})
  const bucket = tokenBucket(options.connectRate ?? 500)
  const identities = new WeakMap<Client, Identity>()
  const pending = new Set<Promise<void>>()
  let closing = false
  const listenerOf = new WeakMap<object, Listener>()

  broker.authenticate = (client, _username, _password, done) => {
    if (!bucket.take()) {
      done(Object.assign(new Error('connection rate limit'), {returnCode: 3}) as never, false) // 3 = server unavailable
      return
    }
    const listener = listenerOf.get(client.conn) ?? 'device'
    authenticate(options.db, client, listener, options.onDeviceAuthenticated && listener === 'device' ? options.onDeviceAuthenticated : async () => undefined)
      .then((identity) => {
        identities.set(client, identity)
        done(null, true)
      }, (error) => {
        log(`refused ${client?.id}: ${(error as Error).message}`)
        done(error, false)
      })
  }
  broker.authorizePublish = (client, packet, done) => {
    const identity = client ? identities.get(client) : undefined
    if (!mayPublish(identity, packet.topic)) return done(new Error(`publish to ${packet.topic} denied`))
    if (!options.beforeAck || identity?.kind !== 'device') return done(null)
    // Closing: refuse (the device keeps the message and resends after reconnecting) rather than
    // take a message whose PUBACK could no longer be sent.
    if (closing) return done(new Error('broker shutting down'))
    const work = options.beforeAck(packet.topic, Buffer.from(packet.payload as Buffer)).then(() => done(null), (error: Error) => done(error))
    pending.add(work)
    void work.finally(() => pending.delete(work))
  }
  broker.authorizeSubscribe = (client, subscription, done) => {
    // A null subscription answers SUBACK 0x80 for this filter without closing the session.
    done(null, maySubscribe(identities.get(client), subscription.topic) ? subscription : null)
  }

  const servers: TlsServer[] = []
  const listen = async (listener: Listener, port: number) => {
    const server = tls.createServer({...(await tlsContext(options.caDir, options.passphrase, listener)), requestCert: true, rejectUnauthorized: false})
    server.on('secureConnection', (socket: TLSSocket) => {
      if (!socket.authorized) {
        log(`${listener} TLS refused ${socket.remoteAddress}: ${String(socket.authorizationError)}`)
        socket.destroy()
        return
      }
      listenerOf.set(socket, listener)
      socket.on('data', packetSizeWatcher(options.maxPacketBytes ?? 64 * 1024, (reason) => {
        log(`${listener} connection from ${socket.remoteAddress} closed: ${reason}`)
        socket.destroy()
      }))
      broker.handle(socket)
    })
    server.on('tlsClientError', (error) => log(`${listener} TLS handshake failed: ${error.message}`))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE'
        ? conflict('E_PORT_IN_USE', `the ${listener} listener's port ${options.host ?? '127.0.0.1'}:${port} is in use`, {
          hint: `stop what listens there (another \`iotctl dev up\` under a different IOTCTL_HOME?), or choose another port (0: any free one)`,
        })
        : error))
      server.listen(port, options.host ?? '127.0.0.1', () => resolve())
    })
    servers.push(server)
    return (server.address() as AddressInfo).port
  }
  const devicePort = await listen('device', options.devicePort)
  const servicePort = await listen('service', options.servicePort)
  // `certs crl` replaces crl-chain.pem by rename: reload both listeners' CRLs when it changes.
  const reloadCrls = async () => {
    for (const [i, listener] of (['device', 'service'] as const).entries()) {
      servers[i]!.setSecureContext({...(await tlsContext(options.caDir, options.passphrase, listener))})
    }
  }
  let debounce: NodeJS.Timeout | undefined
  const watcher = watch(join(options.caDir, 'crl'), () => {
    clearTimeout(debounce)
    debounce = setTimeout(() => reloadCrls().then(() => log('CRLs reloaded'), (error) => log(`CRL reload failed: ${(error as Error).message}`)), 200)
  })
  const live = new Set<Client>()
  // Presence counts sessions per device: on a takeover the new session may be ready before the
  // old one's disconnect is reported, which must not mark a connected device offline.
  const sessions = new Map<string, number>()
  broker.on('clientReady', (client) => {
    live.add(client)
    const identity = identities.get(client)
    if (identity?.kind !== 'device') return
    const n = (sessions.get(identity.name) ?? 0) + 1
    sessions.set(identity.name, n)
    if (n === 1) options.onPresence?.(identity.name, true)
  })
  broker.on('clientDisconnect', (client) => {
    const identity = identities.get(client)
    if (!live.delete(client) || identity?.kind !== 'device') return
    const n = (sessions.get(identity.name) ?? 1) - 1
    if (n > 0) return void sessions.set(identity.name, n)
    sessions.delete(identity.name)
    options.onPresence?.(identity.name, false)
  })
  const sweep = setInterval(() => void disconnectRevoked(options.db, live, identities, log), options.revocationCheckMs ?? 2000)
  sweep.unref()

  return {
    devicePort,
    servicePort,
    connections: () => live.size,
    subscribe: (topic, handler) => new Promise<void>((resolve) => {
      broker.subscribe(topic, (packet, done) => handler(packet.topic, Buffer.from(packet.payload as Buffer), () => done()), () => resolve())
    }),
    publish: (topic, payload, {qos, retain}) => new Promise<void>((resolve, reject) => {
      broker.publish({cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false}, (error) => (error ? reject(error) : resolve()))
    }),
    reloadCrls,
    close: async () => {
      closing = true
      clearInterval(sweep)
      clearTimeout(debounce)
      watcher.close()
      const stopped = Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
      // Messages already taken get stored and acknowledged before the sessions close.
      await Promise.allSettled([...pending])
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await stopped
    },
  }
}

/** Revoking a certificate ends its live session within one sweep interval. */
async function disconnectRevoked(db: Database, clients: Set<Client>, identities: WeakMap<Client, Identity>, log: (line: string) => void) {
  const live = [...clients].filter((c) => identities.has(c))
  if (live.length === 0) return
  const serials = live.map((c) => identities.get(c)!.serial)
  const {rows} = await db.pool.query<{serial: string}>(
    "SELECT ltrim(serial, '0') AS serial FROM certificates WHERE ltrim(serial, '0') = ANY($1::text[]) AND status = 'revoked'", [serials])
    .catch(() => ({rows: []}))
  const revoked = new Set(rows.map((r) => r.serial))
  for (const client of live) {
    if (revoked.has(identities.get(client)!.serial)) {
      log(`disconnecting ${client.id}: certificate revoked`)
      client.close()
    }
  }
}

/** A token bucket: `rate` tokens a second, bursts up to `rate`. */
export function tokenBucket(rate: number, now: () => number = Date.now) {
  let tokens = rate
  let last = now()
  return {
    take(): boolean {
      const t = now()
      tokens = Math.min(rate, tokens + ((t - last) / 1000) * rate)
      last = t
      if (tokens < 1) return false
      tokens -= 1
      return true
    },
  }
}
