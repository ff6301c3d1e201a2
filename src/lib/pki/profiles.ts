import {randomBytes} from 'node:crypto'
import {isIP} from 'node:net'
import {x509} from './x509.js'

/** The certificate kinds iotctl issues; each has one fixed extension profile (RFC 5280 §4.2). */
export type Profile =
  | {kind: 'root'}
  | {kind: 'intermediate'}
  | {kind: 'server'; names: string[]}
  | {kind: 'device'; deviceId: string}
  | {kind: 'operator'; name: string}

export const DEVICE_URI_PREFIX = 'urn:iotctl:device:'
export const SERVICE_URI_PREFIX = 'urn:iotctl:service:'
/** Devices and services must not be told apart by clock skew: backdate notBefore by an hour. */
export const CLOCK_SKEW_MS = 60 * 60 * 1000

/** X.509 times have whole seconds (RFC 5280 §4.1.2.5): round so records equal certificates. */
export const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000)

/**
 * A positive serial of 128 random bits (CA/B Forum asks for at least 64 bits of entropy;
 * RFC 5280 §4.1.2.2 allows up to 20 octets). The top bit is cleared so DER needs no sign byte.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return bytes.toString('hex')
}

// The issuer's key identifier is the same for every certificate it signs: hash its key once.
const authorityKeyIds = new WeakMap<CryptoKey, Promise<import('@peculiar/x509').AuthorityKeyIdentifierExtension>>()

export async function extensionsFor(profile: Profile, subjectKey: CryptoKey, issuerKey: CryptoKey) {
  const x = await x509()
  const KU = x.KeyUsageFlags
  const ski = await x.SubjectKeyIdentifierExtension.create(subjectKey)
  if (!authorityKeyIds.has(issuerKey)) authorityKeyIds.set(issuerKey, x.AuthorityKeyIdentifierExtension.create(issuerKey))
  const aki = await authorityKeyIds.get(issuerKey)!
  const leafKeyUsage = new x.KeyUsagesExtension(KU.digitalSignature, true)
  switch (profile.kind) {
    case 'root':
      return [new x.BasicConstraintsExtension(true, 1, true), new x.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true), ski]
    case 'intermediate':
      return [new x.BasicConstraintsExtension(true, 0, true), new x.KeyUsagesExtension(KU.keyCertSign | KU.cRLSign, true), ski, aki]
    case 'server': {
      const names = ['localhost', '127.0.0.1', ...profile.names].map((n) => ({type: isIP(n) ? 'ip' : 'dns', value: n}))
      return [new x.BasicConstraintsExtension(false, undefined, true), leafKeyUsage,
        new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.serverAuth]),
        new x.SubjectAlternativeNameExtension(names as {type: 'ip' | 'dns'; value: string}[]), ski, aki]
    }
    case 'device':
    case 'operator': {
      const uri = profile.kind === 'device' ? DEVICE_URI_PREFIX + profile.deviceId : SERVICE_URI_PREFIX + profile.name
      return [new x.BasicConstraintsExtension(false, undefined, true), leafKeyUsage,
        new x.ExtendedKeyUsageExtension([x.ExtendedKeyUsage.clientAuth]),
        new x.SubjectAlternativeNameExtension([{type: 'url', value: uri}]), ski, aki]
    }
  }
}

export interface CertificateRequest {
  subject: string
  issuer: string
  publicKey: CryptoKey
  issuerPublicKey: CryptoKey
  signingKey: CryptoKey
  signingAlgorithm: Algorithm | EcdsaParams
  profile: Profile
  days: number
  now?: Date
}

export async function createCertificate(req: CertificateRequest): Promise<{pem: string; serial: string; notBefore: Date; notAfter: Date}> {
  const x = await x509()
  const now = req.now ?? new Date()
  const notBefore = wholeSeconds(now.getTime() - CLOCK_SKEW_MS)
  const notAfter = wholeSeconds(now.getTime() + req.days * 86_400_000)
  const serial = randomSerial()
  const cert = await x.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: req.subject,
    issuer: req.issuer,
    notBefore,
    notAfter,
    publicKey: req.publicKey,
    signingKey: req.signingKey,
    signingAlgorithm: req.signingAlgorithm,
    extensions: await extensionsFor(req.profile, req.publicKey, req.issuerPublicKey),
  })
  return {pem: cert.toString('pem').trimEnd() + '\n', serial, notBefore, notAfter}
}
