import {createHash, createPublicKey, sign, verify, type KeyObject} from 'node:crypto'

/**
 * Domain separation: a signature over a firmware manifest can never be replayed as an assignment
 * (or anything else this key signs), because each kind of message is signed with its own prefix.
 */
export const SIGNING_DOMAINS = {
  manifest: 'iotctl/firmware-manifest/v1\n',
  assignment: 'iotctl/ota-assignment/v1\n',
} as const
export type SigningDomain = keyof typeof SIGNING_DOMAINS

export const SIGNING_ALGORITHMS = ['ecdsa-p256', 'ed25519'] as const
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number]

/** Ed25519 hashes internally (RFC 8032: no digest argument); ECDSA P-256 signs a SHA-256 digest. */
const digestFor = (key: KeyObject) => (key.asymmetricKeyType === 'ed25519' ? null : 'sha256')

export function signBytes(domain: SigningDomain, bytes: Uint8Array, privateKey: KeyObject): string {
  return sign(digestFor(privateKey), Buffer.concat([Buffer.from(SIGNING_DOMAINS[domain]), bytes]), privateKey).toString('base64')
}

export function verifyBytes(domain: SigningDomain, bytes: Uint8Array, signature: string, publicKey: KeyObject): boolean {
  try {
    return verify(digestFor(publicKey), Buffer.concat([Buffer.from(SIGNING_DOMAINS[domain]), bytes]), publicKey, Buffer.from(signature, 'base64'))
  } catch {
    return false // a malformed signature is a failed verification, not a crash
  }
}

/** The key id devices and manifests name: the first 16 hex digits of SHA-256(SubjectPublicKeyInfo DER). */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key
  return createHash('sha256').update(publicKey.export({format: 'der', type: 'spki'})).digest('hex').slice(0, 16)
}

export function algorithmOf(key: KeyObject): SigningAlgorithm {
  return key.asymmetricKeyType === 'ed25519' ? 'ed25519' : 'ecdsa-p256'
}
