import {createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject} from 'node:crypto'
import {mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {conflict, invalidInput, notFound} from '../core/errors.js'
import {algorithmOf, keyIdOf, type SigningAlgorithm} from './signing.js'

/** The fleet's firmware signing key: PKCS#8 PEM encrypted with the CA passphrase (0600), and its public half. */
export const signingKeyFiles = (dir: string) => ({
  privateKey: join(dir, 'firmware-signing.key'),
  publicKey: join(dir, 'firmware-signing.pub'),
})

export interface SigningKeyInfo {
  key_id: string
  algorithm: SigningAlgorithm
  public_key_file: string
  public_key_pem: string
}

const exists = (path: string) => stat(path).then(() => true, () => false)

export async function initSigningKeys(options: {dir: string; algorithm: SigningAlgorithm; passphrase: string; force?: boolean}): Promise<SigningKeyInfo> {
  const files = signingKeyFiles(options.dir)
  if (!options.force && (await exists(files.privateKey))) {
    throw conflict('E_KEYS_EXIST', `a firmware signing key already exists in ${options.dir}`, {
      hint: 'devices trust its public key: replacing it (--force) makes them refuse every assignment until they trust the new one',
    })
  }
  if (options.passphrase.length < 8) throw invalidInput('E_PASSPHRASE_SHORT', 'the passphrase must have at least 8 characters', {hint: 'use the CA passphrase (IOTCTL_CA_PASSPHRASE)'})
  const pair = options.algorithm === 'ed25519'
    ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('ec', {namedCurve: 'prime256v1'})
  const pem = pair.privateKey.export({format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: options.passphrase}) as string
  const publicPem = pair.publicKey.export({format: 'pem', type: 'spki'}) as string
  await mkdir(options.dir, {recursive: true, mode: 0o700})
  await writeFile(files.privateKey, pem, {mode: 0o600})
  await writeFile(files.publicKey, publicPem, {mode: 0o644})
  return {key_id: keyIdOf(pair.publicKey), algorithm: options.algorithm, public_key_file: files.publicKey, public_key_pem: publicPem}
}

export async function hasSigningKeys(dir: string): Promise<boolean> {
  return exists(signingKeyFiles(dir).privateKey)
}

export async function loadPublicKey(dir: string): Promise<{key: KeyObject; keyId: string}> {
  const file = signingKeyFiles(dir).publicKey
  const pem = await readFile(file, 'utf8').catch(() => {
    throw notFound('E_NO_SIGNING_KEY', `no firmware signing key in ${dir}`, {hint: 'create one with `iotctl keys init`'})
  })
  const key = createPublicKey(pem)
  return {key, keyId: keyIdOf(key)}
}

export async function loadSigningKey(dir: string, passphrase: string): Promise<{key: KeyObject; keyId: string; algorithm: SigningAlgorithm}> {
  const pem = await readFile(signingKeyFiles(dir).privateKey, 'utf8').catch(() => {
    throw notFound('E_NO_SIGNING_KEY', `no firmware signing key in ${dir}`, {hint: 'create one with `iotctl keys init`'})
  })
  let key: KeyObject
  try {
    key = createPrivateKey({key: pem, format: 'pem', passphrase})
  } catch {
    throw notFound('E_SIGNING_KEY_DECRYPT', 'the firmware signing key cannot be decrypted: wrong passphrase; nothing was written', {
      hint: 'set IOTCTL_CA_PASSPHRASE or --passphrase-file to the passphrase given to `iotctl keys init`',
    })
  }
  return {key, keyId: keyIdOf(key), algorithm: algorithmOf(key)}
}
