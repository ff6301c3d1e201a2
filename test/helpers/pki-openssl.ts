import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {beforeEach} from 'vitest'

/**
 * The real `openssl` CLI, used as an independent judge of what iotctl writes. CI installs it;
 * when it is missing the tests that call `requireOpenssl()` in beforeAll FAIL, they never skip.
 */
export const OPENSSL = process.env.OPENSSL_BIN ?? (existsSync('/usr/bin/openssl') ? '/usr/bin/openssl' : 'openssl')

export interface OpensslResult {
  code: number
  stdout: string
  stderr: string
}

/** Run openssl; never throws for a non-zero exit (verify failures are results, not errors). */
export function opensslRun(args: string[], input?: string | Buffer): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(OPENSSL, args, {encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 30_000}, (error, stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & {code?: string | number}) | null
      if (e && typeof e.code === 'string') return reject(new Error(`cannot run ${OPENSSL}: ${e.message}`))
      resolve({code: e ? Number(e.code ?? 1) : 0, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8')})
    })
    // openssl may exit without reading stdin (most commands take files): that EPIPE is not a failure.
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(input ?? '')
  })
}

/** Run openssl and insist on exit 0; returns stdout. */
export async function openssl(args: string[], input?: string | Buffer): Promise<string> {
  const r = await opensslRun(args, input)
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`)
  return r.stdout
}

/** Raw bytes from openssl (DER output). */
export function opensslBinary(args: string[], input?: string | Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(OPENSSL, args, {encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 30_000}, (error, stdout, stderr) => {
      if (error) return reject(new Error(`openssl ${args.join(' ')}: ${error.message}\n${stderr.toString()}`))
      resolve(stdout)
    })
    // openssl may exit without reading stdin (most commands take files): that EPIPE is not a failure.
    child.stdin?.on('error', () => undefined)
    child.stdin?.end(input ?? '')
  })
}

let checked: Promise<string> | undefined

/** Fail loudly (not skip) when openssl is not installed; the check runs once per file. */
export function requireOpenssl(): Promise<string> {
  checked ??= checkOpenssl()
  return checked
}

/**
 * Register a beforeEach that fails every test of the file when openssl is missing. A failing
 * beforeAll would only mark the tests as skipped, and CI counts skipped tests as not failed.
 */
export function failEachTestWithoutOpenssl(): void {
  beforeEach(async () => {
    await requireOpenssl()
  })
}

async function checkOpenssl(): Promise<string> {
  let version: string
  try {
    version = await openssl(['version'])
  } catch (error) {
    throw new Error(`the openssl CLI is required for these tests and could not be run (${OPENSSL}): ${(error as Error).message}`)
  }
  if (!/^OpenSSL 3\./.test(version)) throw new Error(`OpenSSL 3.x is required, found: ${version}`)
  return version.trim()
}

/** `sha256 Fingerprint=AB:CD:…` → `abcd…` */
export function normaliseFingerprint(output: string): string {
  const m = /Fingerprint=([0-9A-Fa-f:]+)/.exec(output)
  if (!m) throw new Error(`no fingerprint in ${JSON.stringify(output)}`)
  return m[1]!.replace(/:/g, '').toLowerCase()
}

export async function opensslFingerprint(certPath: string): Promise<string> {
  return normaliseFingerprint(await openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', certPath]))
}

export const certText = (path: string) => openssl(['x509', '-noout', '-text', '-in', path])

/** The value of one `X509v3 …:` block of `openssl x509 -text` (header line including "critical", then its value lines). */
export function extensionBlock(text: string, name: string): {critical: boolean; value: string} {
  const lines = text.split('\n')
  const i = lines.findIndex((l) => l.trim().startsWith(`${name}:`))
  if (i < 0) throw new Error(`no ${name} extension in:\n${text}`)
  const indent = lines[i]!.search(/\S/)
  const value: string[] = []
  for (let j = i + 1; j < lines.length; j++) {
    const line = lines[j]!
    if (line.trim() === '' || line.search(/\S/) <= indent) break
    value.push(line.trim())
  }
  return {critical: /critical/.test(lines[i]!), value: value.join('\n')}
}

/** notBefore / notAfter via openssl, as Dates. */
export async function opensslDates(certPath: string): Promise<{notBefore: Date; notAfter: Date}> {
  const out = await openssl(['x509', '-noout', '-startdate', '-enddate', '-in', certPath])
  const get = (k: string) => new Date(new RegExp(`${k}=(.+)`).exec(out)![1]!.trim())
  return {notBefore: get('notBefore'), notAfter: get('notAfter')}
}

export async function opensslSerial(certPath: string): Promise<string> {
  return /serial=([0-9A-Fa-f]+)/.exec(await openssl(['x509', '-noout', '-serial', '-in', certPath]))![1]!.toLowerCase()
}

/**
 * `openssl verify -CAfile root -untrusted intermediate leaf` (optionally with CRLs).
 * Returns the result; `ok` is true only for exit 0 and "<leaf>: OK".
 */
export async function opensslVerify(options: {root: string; untrusted?: string; leaf: string; crlFile?: string}): Promise<OpensslResult & {ok: boolean}> {
  const args = ['verify', '-CAfile', options.root]
  if (options.untrusted) args.push('-untrusted', options.untrusted)
  if (options.crlFile) args.push('-crl_check_all', '-CRLfile', options.crlFile)
  args.push(options.leaf)
  const r = await opensslRun(args)
  return {...r, ok: r.code === 0 && /: OK\s*$/.test(r.stdout)}
}

export type CsrKey = 'ec-p256' | 'ec-p384' | 'rsa-1024' | 'rsa-2048'

const KEYGEN: Record<CsrKey, string[]> = {
  'ec-p256': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'rsa-1024': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  'rsa-2048': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
}

/** A private key made by openssl (unencrypted PKCS#8 PEM) at dir/name.key. */
export async function opensslKey(dir: string, name: string, type: CsrKey = 'ec-p256'): Promise<string> {
  const path = join(dir, `${name}.key`)
  await openssl(['genpkey', ...KEYGEN[type], '-out', path])
  return path
}

/** A PKCS#10 CSR made by openssl with `-subj /CN=cn`, from keyPath (or a fresh key). */
export async function opensslCsr(dir: string, cn: string, options: {keyPath?: string; type?: CsrKey; name?: string} = {}): Promise<{keyPath: string; csrPath: string; csrPem: string}> {
  const name = options.name ?? cn
  const keyPath = options.keyPath ?? (await opensslKey(dir, name, options.type))
  const csrPath = join(dir, `${name}.csr`)
  await openssl(['req', '-new', '-key', keyPath, '-subj', `/CN=${cn}`, '-out', csrPath])
  return {keyPath, csrPath, csrPem: await openssl(['req', '-in', csrPath])}
}

export function pemToDer(pem: string): Buffer {
  const body = pem.replace(/-----(BEGIN|END) [^-]+-----/g, '').replace(/\s+/g, '')
  return Buffer.from(body, 'base64')
}

export function derToPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}

/**
 * Tamper with the signature of a valid CSR: flip bits in the last byte of the DER, which is the
 * tail of the signature BIT STRING (for ECDSA: the last byte of the INTEGER s), and re-encode.
 * The structure still parses; only the proof of possession is broken.
 */
export function tamperCsrSignature(pem: string): {pem: string; der: Buffer} {
  const der = Buffer.from(pemToDer(pem))
  der[der.length - 1] = der[der.length - 1]! ^ 0x5a
  return {pem: derToPem(der, 'CERTIFICATE REQUEST'), der}
}

/** Save a PEM string to dir/name and return the path (for openssl input). */
export async function savePem(dir: string, name: string, pem: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, pem)
  return path
}

/** `openssl crl -text` of a CRL file, plus its number and dates. */
export async function opensslCrl(path: string): Promise<{text: string; number: bigint; lastUpdate: Date; nextUpdate: Date}> {
  const text = await openssl(['crl', '-in', path, '-noout', '-text'])
  const numberOut = await openssl(['crl', '-in', path, '-noout', '-crlnumber'])
  const hex = /crlNumber=(?:0x)?([0-9A-Fa-f]+)/.exec(numberOut)
  if (!hex) throw new Error(`no crlNumber in ${numberOut}`)
  const dates = await openssl(['crl', '-in', path, '-noout', '-lastupdate', '-nextupdate'])
  return {
    text,
    number: BigInt(numberOut.includes('0x') ? `0x${hex[1]}` : hex[1]!),
    lastUpdate: new Date(/lastUpdate=(.+)/.exec(dates)![1]!.trim()),
    nextUpdate: new Date(/nextUpdate=(.+)/.exec(dates)![1]!.trim()),
  }
}

/** Serials (lower-case hex) listed in `openssl crl -text`, with the reason text that follows each. */
export function crlEntries(text: string): Map<string, string> {
  const entries = new Map<string, string>()
  const re = /Serial Number: ([0-9A-Fa-f]+)\s+Revocation Date: [^\n]+(?:\s+CRL entry extensions:\s+X509v3 CRL Reason Code:\s+([^\n]+))?/g
  for (const m of text.matchAll(re)) entries.set(m[1]!.toLowerCase(), (m[2] ?? '').trim())
  return entries
}
