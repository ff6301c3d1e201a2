import {sign} from 'node:crypto'
import {mkdir, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {PoolClient} from '../db/pool.js'
import type {SigningCa} from './ca.js'
import {nextCrlNumber} from './store.js'
import {x509} from './x509.js'
import {CLOCK_SKEW_MS} from './profiles.js'

/** CRLs are short-lived on purpose: a relying party that cannot refresh fails closed after this. */
export const CRL_VALIDITY_DAYS = 7

export interface CrlInfo {
  ca: string
  number: number
  entries: number
  this_update: string
  next_update: string
  path: string
}

interface RevokedRow {
  serial: string
  revoked_at: Date
  revocation_reason: string | null
}

async function revokedBy(client: PoolClient, ca: SigningCa): Promise<RevokedRow[]> {
  // The root CA only signs the two intermediates, which iotctl never revokes on its own: its CRL
  // is empty but must exist, because Node's TLS checks a CRL for every CA in the chain.
  if (ca.role === 'root') return []
  const {rows} = await client.query<RevokedRow>(
    "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE issuer = $1 AND status = 'revoked' ORDER BY serial", [ca.role])
  return rows
}

const REASON_CODES: Record<string, number> = {unspecified: 0, keyCompromise: 1, affiliationChanged: 3, superseded: 4, cessationOfOperation: 5, privilegeWithdrawn: 9}

type Forge = typeof import('node-forge')

/** DER INTEGERs are signed: a serial whose first byte has the top bit set needs a leading 0x00. */
function serialBytes(hex: string): string {
  const bytes = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex')
  return (bytes[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes).toString('binary')
}

/** revokedCertificates (RFC 5280 §5.1.2.6) as a DER SEQUENCE built with node-forge's asn1. */
function revokedSequence(forge: Forge, rows: RevokedRow[]) {
  const {asn1} = forge
  const U = asn1.Class.UNIVERSAL
  const reasons = new Map<number, ReturnType<typeof asn1.create>>()
  const reasonExtensions = (code: number) => {
    if (!reasons.has(code)) {
      reasons.set(code, asn1.create(U, asn1.Type.SEQUENCE, true, [asn1.create(U, asn1.Type.SEQUENCE, true, [
        asn1.create(U, asn1.Type.OID, false, asn1.oidToDer('2.5.29.21').getBytes()),
        asn1.create(U, asn1.Type.OCTETSTRING, false, String.fromCharCode(0x0a, 0x01, code)),
      ])]))
    }
    return reasons.get(code)!
  }
  return asn1.create(U, asn1.Type.SEQUENCE, true, rows.map((r) => {
    const code = REASON_CODES[r.revocation_reason ?? 'unspecified'] ?? 0
    const fields = [
      asn1.create(U, asn1.Type.INTEGER, false, serialBytes(r.serial)),
      // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime after.
      r.revoked_at.getUTCFullYear() < 2050
        ? asn1.create(U, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(r.revoked_at))
        : asn1.create(U, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(r.revoked_at)),
    ]
    // RFC 5280 §5.3.1: the reason code "unspecified" SHOULD be absent.
    if (code !== 0) fields.push(reasonExtensions(code))
    return asn1.create(U, asn1.Type.SEQUENCE, true, fields)
  }))
}

/**
 * Sign one CRL (RFC 5280 §5) with an increasing CRL number and the issuer's key identifier.
 * @peculiar/x509 builds and signs the CRL header (issuer, times, extensions), but its generator
 * checks each entry against all earlier ones and its ASN.1 layer costs ~0.2 ms an entry: minutes
 * for 100,000 serials. So its CRL is built without entries, and the entries are added with
 * node-forge's DER encoder (used for encoding only, never to verify anything), then the
 * TBSCertList is signed again with Node's crypto.sign. Serials are unique by the primary key.
 */
export async function buildCrl(client: PoolClient, ca: SigningCa, now = new Date()): Promise<{pem: string; number: number; entries: number; thisUpdate: Date; nextUpdate: Date}> {
  const x = await x509()
  const {AsnConvert} = await import('@peculiar/asn1-schema')
  const {CRLNumber, id_ce_cRLNumber} = await import('@peculiar/asn1-x509')
  const rows = await revokedBy(client, ca)
  const number = await nextCrlNumber(client, ca.role)
  // Backdated like certificates, so a relying party whose clock lags still accepts a fresh CRL.
  const thisUpdate = new Date(now.getTime() - CLOCK_SKEW_MS)
  const nextUpdate = new Date(thisUpdate.getTime() + CRL_VALIDITY_DAYS * 86_400_000)
  const crl = await x.X509CrlGenerator.create({
    issuer: ca.name, thisUpdate, nextUpdate, signingKey: ca.signingKey, signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      await x.AuthorityKeyIdentifierExtension.create(ca.publicKey),
      new x.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(number))),
    ],
  })
  let der: Buffer = Buffer.from(crl.rawData)
  if (rows.length > 0) der = await withEntries(der, rows, ca)
  // OpenSSL, Node and Mosquitto read the RFC 7468 label "X509 CRL", not the library's "CRL".
  return {pem: x.PemConverter.encode(new Uint8Array(der), 'X509 CRL').trimEnd() + '\n', number, entries: rows.length, thisUpdate, nextUpdate}
}

async function withEntries(emptyCrl: Buffer, rows: RevokedRow[], ca: SigningCa): Promise<Buffer> {
  const {default: forge} = await import('node-forge')
  const {asn1} = forge
  const [tbs, algorithm] = asn1.fromDer(emptyCrl.toString('binary')).value as ReturnType<typeof asn1.create>[]
  // TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, [revokedCertificates], [0] crlExtensions
  ;(tbs!.value as ReturnType<typeof asn1.create>[]).splice(5, 0, revokedSequence(forge, rows))
  const tbsDer = Buffer.from(asn1.toDer(tbs!).getBytes(), 'binary')
  const hash = ca.keyObject.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256'
  const signature = sign(hash, tbsDer, {key: ca.keyObject, dsaEncoding: 'der'})
  const list = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [tbs!, algorithm!,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature.toString('binary'))])
  return Buffer.from(asn1.toDer(list).getBytes(), 'binary')
}

/** Write CRLs for every CA, each atomically, plus crl-chain.pem (all of them) for Node's `tls`. */
export async function writeCrls(client: PoolClient, cas: SigningCa[], outDir: string): Promise<CrlInfo[]> {
  await mkdir(outDir, {recursive: true, mode: 0o755})
  const now = new Date()
  const infos: CrlInfo[] = []
  const pems: string[] = []
  for (const ca of cas) {
    const crl = await buildCrl(client, ca, now)
    const path = join(outDir, `${ca.role}.crl.pem`)
    await atomicWrite(path, crl.pem)
    pems.push(crl.pem)
    infos.push({ca: ca.role, number: crl.number, entries: crl.entries, this_update: crl.thisUpdate.toISOString(), next_update: crl.nextUpdate.toISOString(), path})
  }
  await atomicWrite(join(outDir, 'crl-chain.pem'), pems.join(''))
  return infos
}

async function atomicWrite(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text, {mode: 0o644})
  await rename(tmp, path)
}
