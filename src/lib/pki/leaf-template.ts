import {createHash, sign, X509Certificate} from 'node:crypto'
import type {SigningCa} from './ca.js'
import {generateKeyPair} from './keys.js'
import {createCertificate, DEVICE_URI_PREFIX, randomSerial, SERVICE_URI_PREFIX, CLOCK_SKEW_MS, wholeSeconds} from './profiles.js'

type Forge = typeof import('node-forge')
type Asn1 = ReturnType<Forge['asn1']['create']>
// asn1.copy exists in node-forge but is missing from its type definitions.
const copy = (forge: Forge, node: Asn1): Asn1 => (forge.asn1 as unknown as {copy(n: Asn1): Asn1}).copy(node)

/**
 * Bulk issuance at thousands per second. @peculiar/x509's generator spends ~5 ms a certificate in
 * its ASN.1 layer, so it signs one template leaf per CA and kind (the whole RFC 5280 profile:
 * version, algorithm, issuer, extensions); each certificate is that template's TBSCertificate with
 * the per-subject fields replaced through node-forge's DER codec (encoding only, never used to
 * verify), signed with Node's crypto.sign. Every result is still checked with Node's X509Certificate.
 */
export interface LeafTemplate {
  forge: Forge
  tbs: Asn1
  algorithm: Asn1
  kind: 'device' | 'operator'
}

// TBSCertificate fields (RFC 5280 §4.1): [0] version, serial, signature, issuer, validity, subject, spki, [3] extensions
const SERIAL = 1
const VALIDITY = 4
const SUBJECT = 5
const SPKI = 6
const EXTENSIONS = 7
// Extension order of profiles.ts for device and operator leaves: BC, KU, EKU, SAN, SKI, AKI.
const SAN = 3
const SKI = 4

const cache = new WeakMap<SigningCa, Map<string, Promise<LeafTemplate>>>()

export function leafTemplate(ca: SigningCa, kind: 'device' | 'operator'): Promise<LeafTemplate> {
  if (!cache.has(ca)) cache.set(ca, new Map())
  const perCa = cache.get(ca)!
  if (!perCa.has(kind)) perCa.set(kind, buildTemplate(ca, kind))
  return perCa.get(kind)!
}

async function buildTemplate(ca: SigningCa, kind: 'device' | 'operator'): Promise<LeafTemplate> {
  const {default: forge} = await import('node-forge')
  const keys = await generateKeyPair('ec-p256')
  const profile = kind === 'device' ? {kind, deviceId: 'template'} as const : {kind, name: 'template'} as const
  const cert = await createCertificate({subject: 'CN=template', issuer: ca.name, publicKey: keys.publicKey, issuerPublicKey: ca.publicKey,
    signingKey: ca.signingKey, signingAlgorithm: ca.signingAlgorithm, profile, days: 1})
  const der = new X509Certificate(cert.pem).raw.toString('binary')
  const [tbs, algorithm] = forge.asn1.fromDer(der).value as Asn1[]
  return {forge, tbs: tbs!, algorithm: algorithm!, kind}
}

const fields = (node: Asn1) => node.value as Asn1[]

function time(forge: Forge, date: Date): Asn1 {
  const {asn1} = forge
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date))
}

export interface TemplateLeaf {
  der: Buffer
  serial: string
  notBefore: Date
  notAfter: Date
}

/** One leaf from the template: subject CN = name, the matching SAN URI, SKI from the given key. */
export function signFromTemplate(template: LeafTemplate, ca: SigningCa, name: string, spkiDer: Buffer, days: number, now = new Date()): TemplateLeaf {
  const {forge} = template
  const {asn1} = forge
  const U = asn1.Class.UNIVERSAL
  const tbs = copy(forge, template.tbs)
  const f = fields(tbs)
  const serial = randomSerial()
  const notBefore = wholeSeconds(now.getTime() - CLOCK_SKEW_MS)
  const notAfter = wholeSeconds(now.getTime() + days * 86_400_000)
  f[SERIAL] = asn1.create(U, asn1.Type.INTEGER, false, Buffer.from(serial, 'hex').toString('binary'))
  f[VALIDITY] = asn1.create(U, asn1.Type.SEQUENCE, true, [time(forge, notBefore), time(forge, notAfter)])
  // Subject: one RDN, CN as UTF8String (RFC 5280 §4.1.2.6); the id alphabet is plain ASCII.
  fields(fields(fields(f[SUBJECT]!)[0]!)[0]!)[1] = asn1.create(U, asn1.Type.UTF8, false, name)
  const spki = asn1.fromDer(spkiDer.toString('binary'))
  f[SPKI] = spki
  const extensions = fields(fields(f[EXTENSIONS]!)[0]!)
  const uri = (template.kind === 'device' ? DEVICE_URI_PREFIX : SERVICE_URI_PREFIX) + name
  const san = asn1.create(U, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, uri)])
  setExtensionValue(forge, extensions[SAN]!, asn1.toDer(san).getBytes())
  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING, unused-bits byte excluded.
  const keyBits = (fields(spki)[1]!.value as string).slice(1)
  const keyId = createHash('sha1').update(Buffer.from(keyBits, 'binary')).digest('binary')
  setExtensionValue(forge, extensions[SKI]!, asn1.toDer(asn1.create(U, asn1.Type.OCTETSTRING, false, keyId)).getBytes())
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary')
  const hash = ca.keyObject.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'sha384' : 'sha256'
  const signature = sign(hash, tbsDer, {key: ca.keyObject, dsaEncoding: 'der'})
  const cert = asn1.create(U, asn1.Type.SEQUENCE, true, [tbs, copy(forge, template.algorithm),
    asn1.create(U, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature.toString('binary'))])
  return {der: Buffer.from(asn1.toDer(cert).getBytes(), 'binary'), serial, notBefore, notAfter}
}

/** Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }: replace the last. */
function setExtensionValue(forge: Forge, extension: Asn1, der: string): void {
  const parts = fields(extension)
  parts[parts.length - 1] = forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.OCTETSTRING, false, der)
}
