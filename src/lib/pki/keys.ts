import {createPrivateKey, createPublicKey, createHash, type KeyObject} from 'node:crypto'
import {invalidInput, notFound} from '../core/errors.js'
import {subtle} from './x509.js'

export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048'] as const
export type KeyType = (typeof KEY_TYPES)[number]

/** WebCrypto algorithms for key generation/import and for signing certificates and CRLs. */
export function algorithms(type: KeyType): {key: RsaHashedKeyGenParams | EcKeyGenParams; sign: Algorithm | EcdsaParams} {
  switch (type) {
    case 'ec-p256':
      return {key: {name: 'ECDSA', namedCurve: 'P-256'}, sign: {name: 'ECDSA', hash: 'SHA-256'} as EcdsaParams}
    case 'ec-p384':
      return {key: {name: 'ECDSA', namedCurve: 'P-384'}, sign: {name: 'ECDSA', hash: 'SHA-384'} as EcdsaParams}
    case 'rsa-2048':
      return {key: {name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256'},
        sign: {name: 'RSASSA-PKCS1-v1_5'}}
  }
}

export async function generateKeyPair(type: KeyType): Promise<CryptoKeyPair> {
  return subtle.generateKey(algorithms(type).key, true, ['sign', 'verify']) as Promise<CryptoKeyPair>
}

/** PKCS#8 PEM; with a passphrase, encrypted as PBES2 (PBKDF2 + AES-256-CBC), RFC 8018. */
export async function exportPrivateKey(key: CryptoKey, passphrase?: string): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key))
  const object = createPrivateKey({key: der, format: 'der', type: 'pkcs8'})
  return passphrase === undefined
    ? (object.export({format: 'pem', type: 'pkcs8'}) as string)
    : (object.export({format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase}) as string)
}

/** Decrypt a CA key; a wrong passphrase is exit 3 ("cannot be decrypted"), never a stack trace. */
export function decryptPrivateKey(pem: string, passphrase: string, what: string): KeyObject {
  try {
    return createPrivateKey({key: pem, format: 'pem', passphrase})
  } catch {
    throw notFound('E_CA_KEY_DECRYPT', `CA key cannot be decrypted (${what}): wrong passphrase; nothing was written`, {
      hint: 'set IOTCTL_CA_PASSPHRASE or --passphrase-file to the passphrase given to `iotctl ca init`',
    })
  }
}

export function keyTypeOf(key: KeyObject): KeyType {
  const details = key.asymmetricKeyDetails
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ec-p256'
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'secp384r1') return 'ec-p384'
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) return 'rsa-2048'
  throw invalidInput('E_KEY_TYPE', `unsupported key: ${key.asymmetricKeyType} ${details?.namedCurve ?? details?.modulusLength ?? ''}`, {
    hint: 'use EC P-256, EC P-384, or RSA of at least 2048 bits',
  })
}

export async function toSigningKey(key: KeyObject): Promise<CryptoKey> {
  const der = key.export({format: 'der', type: 'pkcs8'})
  return subtle.importKey('pkcs8', der, algorithms(keyTypeOf(key)).key, false, ['sign'])
}

/** SHA-256 of the DER SubjectPublicKeyInfo: the same key under two devices is detected by it. */
export function publicKeyFingerprint(spkiDer: ArrayBuffer | Buffer): string {
  return createHash('sha256').update(Buffer.from(spkiDer as ArrayBuffer)).digest('hex')
}

export function publicKeyObject(spkiDer: ArrayBuffer | Buffer): KeyObject {
  return createPublicKey({key: Buffer.from(spkiDer as ArrayBuffer), format: 'der', type: 'spki'})
}
