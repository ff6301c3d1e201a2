import type {TLSSocket} from 'node:tls'
import type {Client, AuthenticateError} from 'aedes'
import type {Database} from '../db/pool.js'
import {deviceSubscribeAllowed, devicePublishAllowed, serviceTopicAllowed} from '../mqtt/topics.js'

/** Who is on the other end of a session, from its verified client certificate. */
export interface Identity {
  kind: 'device' | 'service'
  name: string
  serial: string
}

export type Listener = 'device' | 'service'

// MQTT 3.1.1 §3.2.2.3 CONNACK return codes.
const IDENTIFIER_REJECTED = 2
const NOT_AUTHORIZED = 5

function refuse(returnCode: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), {returnCode}) as AuthenticateError
}

/** The peer certificate's CN and serial (Node has verified the chain and CRLs before this runs). */
export function peerIdentity(client: Client, listener: Listener): Identity | undefined {
  const socket = client.conn as TLSSocket
  if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) return undefined
  const cert = socket.getPeerCertificate()
  const cn = Array.isArray(cert?.subject?.CN) ? cert.subject.CN[0] : cert?.subject?.CN
  if (!cn || !cert.serialNumber) return undefined
  return {kind: listener, name: cn, serial: cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, '')}
}

/**
 * Authentication by certificate: the client id must equal the CN (a service may add `-suffix`),
 * the certificate must be one iotctl issued to that identity and still active, and a device must
 * be registered and not deprovisioned. A device's first connection with a rotated certificate
 * revokes its predecessors (supersede).
 */
export async function authenticate(db: Database, client: Client, listener: Listener, onAuthenticated: (identity: Identity) => Promise<void>): Promise<Identity> {
  const identity = peerIdentity(client, listener)
  if (!identity) throw refuse(NOT_AUTHORIZED, 'no verified client certificate')
  const idOk = listener === 'device' ? client.id === identity.name : client.id === identity.name || client.id.startsWith(`${identity.name}-`)
  if (!idOk) throw refuse(IDENTIFIER_REJECTED, `client id ${client.id} does not match certificate CN ${identity.name}`)
  const {rows} = await db.pool.query<{status: string; device_status: string | null}>(
    `SELECT c.status, d.status AS device_status FROM certificates c LEFT JOIN devices d ON d.device_id = c.device_id
     WHERE ltrim(c.serial, '0') = $1 AND c.subject_name = $2 AND c.kind = $3`,
    [identity.serial, identity.name, listener === 'device' ? 'device' : 'operator'])
  const row = rows[0]
  if (!row || row.status !== 'active') throw refuse(NOT_AUTHORIZED, `certificate ${identity.serial} is unknown or revoked`)
  if (listener === 'device' && (row.device_status === null || row.device_status === 'deprovisioned')) {
    throw refuse(NOT_AUTHORIZED, `device ${identity.name} is not registered or deprovisioned`)
  }
  await onAuthenticated(identity)
  return identity
}

export function mayPublish(identity: Identity | undefined, topic: string): boolean {
  if (!identity) return false // includes a restored Will with no client
  return identity.kind === 'device' ? devicePublishAllowed(identity.name, topic) : serviceTopicAllowed(topic)
}

export function maySubscribe(identity: Identity | undefined, filter: string): boolean {
  if (!identity) return false
  return identity.kind === 'device' ? deviceSubscribeAllowed(identity.name, filter) : serviceTopicAllowed(filter)
}
