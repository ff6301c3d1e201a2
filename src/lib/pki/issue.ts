import {generateKeyPair, X509Certificate} from 'node:crypto'
import {promisify} from 'node:util'
import {assertDeviceId, assertNotReservedDeviceId} from '../core/device-id.js'
import {IotctlError, invalidInput, notFound} from '../core/errors.js'
import type {PoolClient} from '../db/pool.js'
import {fingerprint} from './ca-files.js'
import type {SigningCa} from './ca.js'
import {verifyCsr} from './csr.js'
import {publicKeyFingerprint} from './keys.js'
import {leafTemplate, signFromTemplate} from './leaf-template.js'
import {assertKeyUnused, insertCertificates, type CertificateRecord} from './store.js'

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
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw invalidInput('E_DAYS', `--days must be between 1 and ${MAX_DAYS}`, {hint: 'the default is 365; devices rotate with `iotctl certs rotate`'})
  return days
}

interface Subject {
  kind: 'device' | 'operator'
  name: string
  csrPem?: string
  days: number
}

/** A signed leaf not yet recorded: the crypto half of issuance, free of the database. */
interface BuiltLeaf {
  subject: Subject
  pem: string
  serial: string
  notBefore: Date
  notAfter: Date
  fingerprint: string
  publicKeySha256: string
  fromCsr: boolean
  privateKey?: string
}

/**
 * Sign one leaf. The result is checked with Node's own X509Certificate before anything else sees
 * it: a certificate that does not verify against its CA is a bug, not output.
 */
async function buildLeaf(ca: SigningCa, subject: Subject): Promise<BuiltLeaf> {
  let spkiDer: Buffer
  let publicKeySha256: string
  let privateKey: string | undefined
  if (subject.csrPem) {
    ;({spkiDer, publicKeySha256} = await verifyCsr(subject.csrPem, subject.name))
  } else {
    const keys = await generateKeyPairAsync('ec', {namedCurve: 'P-256'}) // on libuv's pool: all cores
    spkiDer = keys.publicKey.export({type: 'spki', format: 'der'})
    publicKeySha256 = publicKeyFingerprint(spkiDer)
    privateKey = keys.privateKey.export({type: 'pkcs8', format: 'pem'}) as string
  }
  const template = await leafTemplate(ca, subject.kind)
  const cert = signFromTemplate(template, ca, subject.name, spkiDer, subject.days)
  const node = new X509Certificate(cert.der)
  if (!node.verify(ca.cert.publicKey) || !node.checkIssued(ca.cert)) {
    throw new IotctlError('E_PKI_SELF_CHECK', 70, 'the issued certificate does not verify against its CA')
  }
  return {subject, pem: node.toString(), serial: cert.serial, notBefore: cert.notBefore, notAfter: cert.notAfter,
    fingerprint: fingerprint(node), publicKeySha256, fromCsr: Boolean(subject.csrPem), privateKey}
}

// Key generation runs on libuv's thread pool: keeping several certificates in flight keeps both
// cores busy while the event loop signs.
const CRYPTO_CONCURRENCY = 16
const generateKeyPairAsync = promisify(generateKeyPair)

/**
 * Issue leaves for many subjects inside the caller's transaction: crypto concurrently, then the
 * key-reuse check (CSRs only: a freshly generated key cannot be in use) and one INSERT per batch.
 */
export async function signLeaves(client: PoolClient, ca: SigningCa, chain: string, subjects: Subject[]): Promise<IssuedCertificate[]> {
  const caExpires = new Date(ca.cert.validTo)
  for (const subject of subjects) {
    if (Date.now() + subject.days * 86_400_000 > caExpires.getTime()) {
      throw invalidInput('E_DAYS', `a ${subject.days}-day certificate would outlive its issuing CA (valid until ${caExpires.toISOString()})`, {
        hint: 'choose fewer --days; renew the CA hierarchy before it expires',
      })
    }
  }
  const {default: pLimit} = await import('p-limit')
  const limit = pLimit(CRYPTO_CONCURRENCY)
  const built = await Promise.all(subjects.map((subject) => limit(() => buildLeaf(ca, subject))))
  for (const leaf of built) if (leaf.fromCsr) await assertKeyUnused(client, leaf.publicKeySha256, leaf.subject.name)
  const records = await insertCertificates(client, built.map((leaf) => ({
    serial: leaf.serial, issuer: ca.role as 'device-ca' | 'service-ca', kind: leaf.subject.kind,
    device_id: leaf.subject.kind === 'device' ? leaf.subject.name : null, subject_name: leaf.subject.name,
    fingerprint_sha256: leaf.fingerprint, public_key_sha256: leaf.publicKeySha256, not_before: leaf.notBefore, not_after: leaf.notAfter,
  })))
  return built.map((leaf, i) => ({record: records[i]!, certificate: leaf.pem, chain, ...(leaf.privateKey ? {private_key: leaf.privateKey} : {})}))
}

/** Devices may get certificates while registered and not deprovisioned; their rows are locked. */
export async function assertIssuable(client: PoolClient, deviceIds: string[]): Promise<void> {
  for (const id of deviceIds) {
    assertDeviceId(id)
    assertNotReservedDeviceId(id)
  }
  const {rows} = await client.query<{device_id: string; status: string}>(
    'SELECT device_id, status FROM devices WHERE device_id = ANY($1::text[]) FOR SHARE', [deviceIds])
  const status = new Map(rows.map((r) => [r.device_id, r.status]))
  for (const id of deviceIds) {
    if (!status.has(id)) {
      throw notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(id)} not found`, {hint: `register it first: iotctl devices register ${id} --type …`})
    }
    if (status.get(id) === 'deprovisioned') {
      throw notFound('E_DEVICE_DEPROVISIONED', `device ${JSON.stringify(id)} is deprovisioned`, {hint: 'deprovisioned devices get no certificates; register a new device id'})
    }
  }
}
