import mqtt, {type IClientOptions, type MqttClient} from 'mqtt'
import {initCa, issueDeviceCertificates, issueOperatorCertificate, publishCrls, revokeCertificates, type IssuedCertificate} from '../../src/lib/pki/index.js'
import {freshDatabase, type TestDatabase} from './database.js'
import {caPem, cleanup, PASSPHRASE, registerDevices, tempDir} from './pki-fixtures.js'

/** A fresh database, a CA, registered devices with certificates, service identities, published CRLs. */
export interface PkiWorld {
  db: TestDatabase
  dir: string
  caDir: string
  /** What a client trusts to verify the broker: root + service CA (the server certificate's issuer). */
  trust: string
  certs: Map<string, IssuedCertificate>
  close(): Promise<void>
}

export async function pkiWorld(options: {prefix: string; devices: string[]; operators?: string[]; revoked?: string[]}): Promise<PkiWorld> {
  const db = await freshDatabase()
  const dir = await tempDir(options.prefix)
  const caDir = `${dir}/ca`
  await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
  await registerDevices(db, options.devices)
  const certs = new Map<string, IssuedCertificate>()
  for (const c of await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: options.devices, days: 30})) certs.set(c.record.subject_name, c)
  for (const name of options.operators ?? []) certs.set(name, await issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name, days: 30}))
  for (const id of options.revoked ?? []) await revokeCertificates(db, {deviceId: id}, 'keyCompromise')
  await publishCrls(db, {caDir, passphrase: PASSPHRASE})
  const trust = await caPem(caDir, 'root.crt', 'service-ca.crt')
  return {db, dir, caDir, trust, certs, close: async () => {
    await db.drop()
    await cleanup(dir)
  }}
}

/**
 * Connect with an issued certificate. Resolves on CONNACK 0; rejects on an error or on a close
 * before it (a handshake the broker refused after TLS 1.3 completed on the client's side).
 */
export async function connectWith(url: string, cert: IssuedCertificate, trust: string, clientId: string, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, {clientId, cert: cert.certificate + cert.chain, key: cert.private_key!, ca: trust,
    reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 5000, ...extra})
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
      client.once('close', () => reject(new Error('connection closed before CONNACK')))
    })
  } catch (error) {
    client.end(true)
    throw error
  }
  return client
}
