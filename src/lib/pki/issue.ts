import {X509Certificate} from 'node:crypto'
import {assertDeviceId, assertNotReservedDeviceId} from '../core/device-id.js'
import {IotctlError, invalidInput, notFound} from '../core/errors.js'
import type {PoolClient} from '../db/pool.js'
import {fingerprint} from './ca-files.js'
import type {SigningCa} from './ca.js'
import {verifyCsr} from './csr.js'
import {exportPrivateKey, generateKeyPair, publicKeyFingerprint} from './keys.js'
import {createCertificate, type Profile} from './profiles.js'
import {assertKeyUnused, insertCertificate, type CertificateRecord} from './store.js'
import {subtle} from './x509.js'

export const DEFAULT_DAYS = 365
export const MAX_DAYS = 3650

export interface IssuedCertificate {
  record: CertificateRecord
  certificate: string
  chain: string
  /** Present only when iotctl generated the key; never logged, never stored in the database. */
  private_key?: string
}

export function assertDays(days: number): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw invalidInput('E_DAYS', `--days must be between 1 and ${MAX_DAYS}`)
  return days
}

interface Subject {
  kind: 'device' | 'operator'
  name: string
  csrPem?: string
  days: number
}

/**
 * Sign one leaf certificate and record it, inside the caller's transaction. The result is checked
 * with Node's own X509Certificate before it is recorded: a certificate that does not verify
 * against its CA is a bug, not output.
 */
export async function signLeaf(client: PoolClient, ca: SigningCa, chain: string, subject: Subject): Promise<IssuedCertificate> {
  let publicKey: CryptoKey
  let publicKeySha256: string
  let privateKey: string | undefined
  if (subject.csrPem) {
    ;({publicKey, publicKeySha256} = await verifyCsr(subject.csrPem, subject.name))
  } else {
    const keys = await generateKeyPair('ec-p256')
    publicKey = keys.publicKey
    publicKeySha256 = publicKeyFingerprint(await subtle.exportKey('spki', keys.publicKey))
    privateKey = await exportPrivateKey(keys.privateKey)
  }
  await assertKeyUnused(client, publicKeySha256, subject.name)
  const profile: Profile = subject.kind === 'device' ? {kind: 'device', deviceId: subject.name} : {kind: 'operator', name: subject.name}
  const cert = await createCertificate({subject: `CN=${subject.name}`, issuer: ca.name, publicKey, issuerPublicKey: ca.publicKey,
    signingKey: ca.signingKey, signingAlgorithm: ca.signingAlgorithm, profile, days: subject.days})
  const node = new X509Certificate(cert.pem)
  if (!node.verify(ca.cert.publicKey) || !node.checkIssued(ca.cert)) {
    throw new IotctlError('E_PKI_SELF_CHECK', 70, 'the issued certificate does not verify against its CA')
  }
  const record = await insertCertificate(client, {serial: cert.serial, issuer: ca.role as 'device-ca' | 'service-ca', kind: subject.kind,
    device_id: subject.kind === 'device' ? subject.name : null, subject_name: subject.name, fingerprint_sha256: fingerprint(node),
    public_key_sha256: publicKeySha256, not_before: cert.notBefore, not_after: cert.notAfter})
  return {record, certificate: cert.pem, chain, ...(privateKey ? {private_key: privateKey} : {})}
}

/** A device may get a certificate while it is registered and not deprovisioned; the row is locked. */
export async function assertIssuable(client: PoolClient, deviceId: string): Promise<void> {
  assertDeviceId(deviceId)
  assertNotReservedDeviceId(deviceId)
  const {rows} = await client.query<{status: string}>('SELECT status FROM devices WHERE device_id = $1 FOR SHARE', [deviceId])
  if (rows.length === 0) {
    throw notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(deviceId)} not found`, {hint: `register it first: iotctl devices register ${deviceId} --type …`})
  }
  if (rows[0]!.status === 'deprovisioned') {
    throw notFound('E_DEVICE_DEPROVISIONED', `device ${JSON.stringify(deviceId)} is deprovisioned`, {hint: 'deprovisioned devices get no certificates; register a new device id'})
  }
}
