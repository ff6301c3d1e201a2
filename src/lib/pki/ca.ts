import {X509Certificate, type KeyObject} from 'node:crypto'
import {mkdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {conflict, invalidInput} from '../core/errors.js'
import {CA_ROLES, caFile, readCert, showCa, type CaRole, type CertInfo} from './ca-files.js'
import {algorithms, decryptPrivateKey, exportPrivateKey, generateKeyPair, keyTypeOf, toSigningKey, type KeyType} from './keys.js'
import {createCertificate, type Profile} from './profiles.js'
import {subtle} from './x509.js'

export const CA_NAMES = {
  root: 'CN=iotctl Root CA,O=iotctl',
  'device-ca': 'CN=iotctl Device CA,O=iotctl',
  'service-ca': 'CN=iotctl Service CA,O=iotctl',
  server: 'CN=iotctl broker,O=iotctl',
} as const satisfies Record<CaRole, string>

const LIFETIME_DAYS = {root: 3650, 'device-ca': 1825, 'service-ca': 1825, server: 825} as const
export const MIN_PASSPHRASE_LENGTH = 8

export interface CaInitOptions {
  dir: string
  keyType: KeyType
  passphrase: string
  sans: string[]
  force: boolean
}

interface Issued {
  pem: string
  keyPem: string
  keys: CryptoKeyPair
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false)
}

/**
 * Build the whole hierarchy in memory, write it to a sibling temporary directory, then rename it
 * into place: a failure part-way leaves no half-written CA, and --force keeps the old one aside.
 */
export async function initCa(options: CaInitOptions): Promise<CertInfo[]> {
  if (options.passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw invalidInput('E_PASSPHRASE', `the CA passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`, {hint: 'choose a longer passphrase (IOTCTL_CA_PASSPHRASE or --passphrase-file); nothing was written'})
  }
  if (!options.force && (await exists(caFile(options.dir, 'root', 'crt')))) {
    throw conflict('E_CA_EXISTS', `a CA already exists in ${options.dir}`, {hint: 'see it with `iotctl ca show`; pass --force to replace it (the old one is kept aside)'})
  }
  const sign = algorithms(options.keyType).sign
  const issue = async (role: CaRole, profile: Profile, issuer?: Issued): Promise<Issued> => {
    const keys = await generateKeyPair(options.keyType)
    const cert = await createCertificate({
      subject: CA_NAMES[role], issuer: issuer ? CA_NAMES[role === 'server' ? 'service-ca' : 'root'] : CA_NAMES[role],
      publicKey: keys.publicKey, issuerPublicKey: (issuer ?? {keys}).keys.publicKey,
      signingKey: (issuer ?? {keys}).keys.privateKey, signingAlgorithm: sign, profile, days: LIFETIME_DAYS[role],
    })
    return {pem: cert.pem, keys, keyPem: await exportPrivateKey(keys.privateKey, options.passphrase)}
  }
  const root = await issue('root', {kind: 'root'})
  const deviceCa = await issue('device-ca', {kind: 'intermediate'}, root)
  const serviceCa = await issue('service-ca', {kind: 'intermediate'}, root)
  const server = await issue('server', {kind: 'server', names: options.sans}, serviceCa)
  await writeAtomically(options.dir, {root, 'device-ca': deviceCa, 'service-ca': serviceCa, server}, options.keyType)
  return showCa(options.dir)
}

async function writeAtomically(dir: string, issued: Record<CaRole, Issued>, keyType: KeyType): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`
  await rm(tmp, {recursive: true, force: true})
  await mkdir(tmp, {recursive: true, mode: 0o700})
  for (const role of CA_ROLES) {
    await writeFile(caFile(tmp, role, 'crt'), issued[role].pem, {mode: 0o644})
    await writeFile(caFile(tmp, role, 'key'), issued[role].keyPem, {mode: 0o600})
  }
  await writeFile(join(tmp, 'ca.json'), JSON.stringify({keyType, createdAt: new Date().toISOString()}) + '\n', {mode: 0o644})
  await mkdir(dirname(dir), {recursive: true, mode: 0o700})
  if (await exists(dir)) await rename(dir, `${dir}.old-${Date.now()}`)
  await rename(tmp, dir)
}

/** A CA that can sign: its certificate and decrypted key, as Node and WebCrypto objects. */
export interface SigningCa {
  role: CaRole
  name: string
  cert: X509Certificate
  pem: string
  signingKey: CryptoKey
  /** The same key for Node's crypto.sign (large CRLs are signed directly, see crl.ts). */
  keyObject: KeyObject
  publicKey: CryptoKey
  signingAlgorithm: Algorithm | EcdsaParams
}

export async function loadSigningCa(dir: string, role: CaRole, passphrase: string): Promise<SigningCa> {
  const cert = await readCert(dir, role)
  const key = decryptPrivateKey(await readFile(caFile(dir, role, 'key'), 'utf8'), passphrase, role)
  const type = keyTypeOf(key)
  const spki = cert.publicKey.export({format: 'der', type: 'spki'})
  return {
    role,
    name: CA_NAMES[role],
    cert,
    pem: cert.toString(),
    signingKey: await toSigningKey(key),
    keyObject: key,
    publicKey: await subtle.importKey('spki', spki, algorithms(type).key, true, ['verify']),
    signingAlgorithm: algorithms(type).sign,
  }
}

export async function chainPem(dir: string, role: 'device-ca' | 'service-ca'): Promise<string> {
  return (await readCert(dir, role)).toString() + (await readCert(dir, 'root')).toString()
}
