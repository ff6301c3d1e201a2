import {X509Certificate} from 'node:crypto'
import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  initCa, issueDeviceCertificates, issueOperatorCertificate, publishCrls, revokeCertificates, rotateDeviceCertificate, showCa, writeIssued,
  type IssuedCertificate,
} from '../../src/lib/pki/index.js'
import {deprovisionDevice} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {
  cleanup, DAY_MS, dumpAllTables, expectIotctlError, fileMode, HOUR_MS, PASSPHRASE, registerDevices, tempDir, WRONG_PASSPHRASE,
} from '../helpers/pki-fixtures.js'
import {
  certText, crlEntries, extensionBlock, openssl, opensslCrl, opensslCsr, opensslDates, opensslFingerprint, opensslRun,
  opensslSerial, opensslVerify, failEachTestWithoutOpenssl, savePem, tamperCsrSignature,
} from '../helpers/pki-openssl.js'

// openssl is the independent judge here: without it every test fails (never skips).
failEachTestWithoutOpenssl()

const ROLES = ['root', 'device-ca', 'service-ca', 'server'] as const
const SUBJECTS = {
  root: 'CN = iotctl Root CA, O = iotctl',
  'device-ca': 'CN = iotctl Device CA, O = iotctl',
  'service-ca': 'CN = iotctl Service CA, O = iotctl',
  server: 'CN = iotctl broker, O = iotctl',
}

const subjectOf = (text: string) => /Subject: (.+)/.exec(text)![1]!.trim()
const issuerOf = (text: string) => /Issuer: (.+)/.exec(text)![1]!.trim()
const keyIdOf = (text: string, name: 'X509v3 Subject Key Identifier' | 'X509v3 Authority Key Identifier') =>
  extensionBlock(text, name).value.replace(/^keyid:/, '').trim()

/** notAfter − notBefore in days, minus the one-hour backdating of notBefore. */
async function lifetimeDays(path: string): Promise<number> {
  const {notBefore, notAfter} = await opensslDates(path)
  return (notAfter.getTime() - notBefore.getTime() - HOUR_MS) / DAY_MS
}

async function pubkeyOfCert(path: string) {
  return openssl(['x509', '-noout', '-pubkey', '-in', path])
}

describe('ca init (EC P-256, the default) as seen by openssl', () => {
  let caDir: string
  let base: string

  beforeAll(async () => {
    base = await tempDir('ossl-ca')
    caDir = join(base, 'ca')
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: ['broker.example.com', '10.1.2.3'], force: false})
  })
  afterAll(async () => cleanup(base))

  it('root: basicConstraints critical CA:TRUE pathlen:1, keyUsage critical keyCertSign+cRLSign, ~10 years, self-signed, P-256', async () => {
    const path = join(caDir, 'root.crt')
    const text = await certText(path)
    expect(subjectOf(text)).toBe(SUBJECTS.root)
    expect(issuerOf(text)).toBe(SUBJECTS.root)
    expect(extensionBlock(text, 'X509v3 Basic Constraints')).toEqual({critical: true, value: 'CA:TRUE, pathlen:1'})
    expect(extensionBlock(text, 'X509v3 Key Usage')).toEqual({critical: true, value: 'Certificate Sign, CRL Sign'})
    expect(text).toContain('ASN1 OID: prime256v1')
    expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/)
    expect(await lifetimeDays(path)).toBeCloseTo(3650, 3)
    expect((await opensslVerify({root: path, leaf: path})).ok).toBe(true)
  })

  it.each(['device-ca', 'service-ca'] as const)('%s: pathlen:0, critical keyUsage, ~5 years, signed by the root (AKI = root SKI)', async (role) => {
    const path = join(caDir, `${role}.crt`)
    const text = await certText(path)
    const rootText = await certText(join(caDir, 'root.crt'))
    expect(subjectOf(text)).toBe(SUBJECTS[role])
    expect(issuerOf(text)).toBe(SUBJECTS.root)
    expect(extensionBlock(text, 'X509v3 Basic Constraints')).toEqual({critical: true, value: 'CA:TRUE, pathlen:0'})
    expect(extensionBlock(text, 'X509v3 Key Usage')).toEqual({critical: true, value: 'Certificate Sign, CRL Sign'})
    expect(keyIdOf(text, 'X509v3 Authority Key Identifier')).toBe(keyIdOf(rootText, 'X509v3 Subject Key Identifier'))
    expect(await lifetimeDays(path)).toBeCloseTo(1825, 3)
    expect((await opensslVerify({root: join(caDir, 'root.crt'), leaf: path})).ok).toBe(true)
  })

  it('server: serverAuth only, SAN localhost + 127.0.0.1 + --san names, from the service intermediate', async () => {
    const path = join(caDir, 'server.crt')
    const text = await certText(path)
    expect(subjectOf(text)).toBe(SUBJECTS.server)
    expect(issuerOf(text)).toBe(SUBJECTS['service-ca'])
    expect(extensionBlock(text, 'X509v3 Basic Constraints')).toEqual({critical: true, value: 'CA:FALSE'})
    expect(extensionBlock(text, 'X509v3 Extended Key Usage').value).toBe('TLS Web Server Authentication')
    expect(extensionBlock(text, 'X509v3 Subject Alternative Name').value)
      .toBe('DNS:localhost, IP Address:127.0.0.1, DNS:broker.example.com, IP Address:10.1.2.3')
    const root = join(caDir, 'root.crt')
    const viaService = await opensslRun(['verify', '-purpose', 'sslserver', '-CAfile', root, '-untrusted', join(caDir, 'service-ca.crt'), path])
    expect(viaService.stdout).toMatch(/: OK\s*$/)
    expect((await opensslVerify({root, untrusted: join(caDir, 'device-ca.crt'), leaf: path})).ok).toBe(false)
  })

  it('keys are encrypted PKCS#8 at rest with mode 0600, open only with the passphrase, and match their certificates', async () => {
    expect(await fileMode(caDir)).toBe(0o700)
    for (const role of ROLES) {
      const keyPath = join(caDir, `${role}.key`)
      const pem = await readFile(keyPath, 'utf8')
      expect(pem.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----\n'), role).toBe(true)
      expect(await fileMode(keyPath), role).toBe(0o600)
      const pub = await openssl(['pkey', '-in', keyPath, '-passin', `pass:${PASSPHRASE}`, '-pubout'])
      expect(pub, role).toBe(await pubkeyOfCert(join(caDir, `${role}.crt`)))
      const wrong = await opensslRun(['pkey', '-in', keyPath, '-passin', `pass:${WRONG_PASSPHRASE}`, '-noout'])
      expect(wrong.code, role).not.toBe(0)
    }
    expect(JSON.parse(await readFile(join(caDir, 'ca.json'), 'utf8'))).toMatchObject({keyType: 'ec-p256'})
  })

  it('showCa: subjects, SHA-256 fingerprints equal to `openssl x509 -fingerprint -sha256`, and expiry', async () => {
    const infos = await showCa(caDir)
    expect(infos.map((i) => i.role)).toEqual([...ROLES])
    for (const info of infos) {
      const path = join(caDir, `${info.role}.crt`)
      expect(info.sha256).toBe(await opensslFingerprint(path))
      expect(info.subject.replace(/=/g, ' = ')).toBe(SUBJECTS[info.role as keyof typeof SUBJECTS])
      expect(new Date(info.not_after).getTime()).toBe((await opensslDates(path)).notAfter.getTime())
      expect(info.serial).toBe(await opensslSerial(path))
      expect(info.key).toBe('ec prime256v1')
    }
  })
})

describe('ca init with other key types, and --force', () => {
  let db: TestDatabase
  let base: string
  let caDir: string

  beforeAll(async () => {
    db = await freshDatabase()
    base = await tempDir('ossl-kt')
    caDir = join(base, 'ca')
    await registerDevices(db, ['kt-p384', 'kt-rsa'])
  })
  afterAll(async () => {
    await db?.drop()
    await cleanup(base)
  })

  async function checkHierarchy(keyText: RegExp, sig: RegExp, device: string): Promise<void> {
    const root = join(caDir, 'root.crt')
    for (const role of ROLES) {
      const text = await certText(join(caDir, `${role}.crt`))
      expect(text, role).toMatch(keyText)
      expect(text, role).toMatch(sig)
    }
    expect((await opensslVerify({root, leaf: join(caDir, 'device-ca.crt')})).ok).toBe(true)
    expect((await opensslVerify({root, untrusted: join(caDir, 'service-ca.crt'), leaf: join(caDir, 'server.crt')})).ok).toBe(true)
    const [issued] = await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: [device], days: 30})
    await writeIssued(join(base, device), issued!)
    expect((await opensslVerify({root, untrusted: join(caDir, 'device-ca.crt'), leaf: join(base, device, 'device.crt')})).ok).toBe(true)
  }

  it('ec-p384 builds a verifiable hierarchy (secp384r1, ecdsa-with-SHA384) that issues device certificates', async () => {
    const infos = await initCa({dir: caDir, keyType: 'ec-p384', passphrase: PASSPHRASE, sans: [], force: false})
    expect(infos.every((i) => i.key === 'ec secp384r1')).toBe(true)
    await checkHierarchy(/ASN1 OID: secp384r1/, /Signature Algorithm: ecdsa-with-SHA384/, 'kt-p384')
  })

  it('init on an existing CA is a conflict (exit 5) and changes nothing', async () => {
    const before = await opensslFingerprint(join(caDir, 'root.crt'))
    await expectIotctlError(initCa({dir: caDir, keyType: 'rsa-2048', passphrase: PASSPHRASE, sans: [], force: false}), 5, 'E_CA_EXISTS')
    expect(await opensslFingerprint(join(caDir, 'root.crt'))).toBe(before)
  })

  it('--force replaces it with rsa-2048 (sha256WithRSAEncryption) and keeps the old CA aside', async () => {
    const before = await opensslFingerprint(join(caDir, 'root.crt'))
    const infos = await initCa({dir: caDir, keyType: 'rsa-2048', passphrase: PASSPHRASE, sans: [], force: true})
    expect(infos.every((i) => i.key === 'rsa 2048')).toBe(true)
    expect(await opensslFingerprint(join(caDir, 'root.crt'))).not.toBe(before)
    const aside = (await readdir(base)).filter((n) => n.startsWith('ca.old-'))
    expect(aside).toHaveLength(1)
    expect(await opensslFingerprint(join(base, aside[0]!, 'root.crt'))).toBe(before)
    await checkHierarchy(/Public-Key: \(2048 bit\)/, /Signature Algorithm: sha256WithRSAEncryption/, 'kt-rsa')
  })
})

describe('device and operator certificates, CSRs and CRLs checked with openssl', () => {
  let db: TestDatabase
  let base: string
  let caDir: string
  let work: string
  let root: string
  let deviceCa: string
  let serviceCa: string
  let dev1: IssuedCertificate
  let dev1Dir: string
  let issuedAt: number

  const certCount = async () => Number((await db.pool.query('SELECT count(*) AS n FROM certificates')).rows[0].n)
  const issue = (deviceIds: string[], extra: {csrPem?: string; days?: number; passphrase?: string} = {}) =>
    issueDeviceCertificates(db, {caDir, passphrase: extra.passphrase ?? PASSPHRASE, deviceIds, csrPem: extra.csrPem, days: extra.days ?? 365})

  beforeAll(async () => {
    db = await freshDatabase()
    base = await tempDir('ossl-dev')
    caDir = join(base, 'ca')
    work = join(base, 'work')
    root = join(caDir, 'root.crt')
    deviceCa = join(caDir, 'device-ca.crt')
    serviceCa = join(caDir, 'service-ca.crt')
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    await registerDevices(db, ['dev-1', 'dev-90', 'dev-csr', 'dev-p384', 'dev-rsa', 'dev-a', 'dev-b', 'dev-c', 'dev-revoked', 'dev-aff', 'dev-gone', 'dev-rot',
      ...Array.from({length: 6}, (_, i) => `bulk-${i}`)])
    issuedAt = Date.now()
    dev1 = (await issue(['dev-1']))[0]!
    dev1Dir = join(work, 'dev-1')
    await writeIssued(dev1Dir, dev1)
  })
  afterAll(async () => {
    await db?.drop()
    await cleanup(base)
  })

  it('device profile: CN = id, SAN URI, CA:FALSE critical, digitalSignature critical, clientAuth only, SKI/AKI', async () => {
    const text = await certText(join(dev1Dir, 'device.crt'))
    expect(subjectOf(text)).toBe('CN = dev-1')
    expect(issuerOf(text)).toBe(SUBJECTS['device-ca'])
    expect(extensionBlock(text, 'X509v3 Subject Alternative Name').value).toBe('URI:urn:iotctl:device:dev-1')
    expect(extensionBlock(text, 'X509v3 Basic Constraints')).toEqual({critical: true, value: 'CA:FALSE'})
    expect(extensionBlock(text, 'X509v3 Key Usage')).toEqual({critical: true, value: 'Digital Signature'})
    expect(extensionBlock(text, 'X509v3 Extended Key Usage').value).toBe('TLS Web Client Authentication')
    expect(keyIdOf(text, 'X509v3 Subject Key Identifier')).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2})+$/)
    expect(keyIdOf(text, 'X509v3 Authority Key Identifier')).toBe(keyIdOf(await certText(deviceCa), 'X509v3 Subject Key Identifier'))
    expect(text).toContain('ASN1 OID: prime256v1')
    // `-ext` prints the same extensions one by one.
    const ext = await openssl(['x509', '-noout', '-ext', 'extendedKeyUsage,basicConstraints', '-in', join(dev1Dir, 'device.crt')])
    expect(ext).toMatch(/Basic Constraints: critical\s+CA:FALSE/)
  })

  it('verifies with `openssl verify -CAfile root.crt -untrusted device-ca.crt`, for clients only', async () => {
    const leaf = join(dev1Dir, 'device.crt')
    expect((await opensslVerify({root, untrusted: deviceCa, leaf})).ok).toBe(true)
    const asClient = await opensslRun(['verify', '-purpose', 'sslclient', '-CAfile', root, '-untrusted', deviceCa, leaf])
    expect(asClient.code).toBe(0)
    const asServer = await opensslRun(['verify', '-purpose', 'sslserver', '-CAfile', root, '-untrusted', deviceCa, leaf])
    expect(asServer.code).not.toBe(0)
    expect(asServer.stdout + asServer.stderr).toMatch(/error 26 at 0 depth lookup: (unsuitable|unsupported) certificate purpose/)
    // The service intermediate did not sign it.
    expect((await opensslVerify({root, untrusted: serviceCa, leaf})).ok).toBe(false)
    // chain.pem is intermediate + root, in that order.
    const chain = await readFile(join(dev1Dir, 'chain.pem'), 'utf8')
    expect(chain).toBe((await readFile(deviceCa, 'utf8')) + (await readFile(root, 'utf8')))
  })

  it('serial ≥ 64 random bits, notBefore ≈ now − 1 h, lifetime as asked; the record matches openssl', async () => {
    const leaf = join(dev1Dir, 'device.crt')
    const serial = await opensslSerial(leaf)
    expect(serial).toBe(dev1.record.serial)
    expect(BigInt(`0x${serial}`).toString(2).length).toBeGreaterThanOrEqual(64)
    const {notBefore, notAfter} = await opensslDates(leaf)
    expect(Math.abs(notBefore.getTime() - (issuedAt - HOUR_MS))).toBeLessThan(60_000)
    expect(Math.abs(notAfter.getTime() - (issuedAt + 365 * DAY_MS))).toBeLessThan(60_000)
    expect(dev1.record).toMatchObject({device_id: 'dev-1', subject_name: 'dev-1', kind: 'device', issuer: 'device-ca', status: 'active',
      fingerprint_sha256: await opensslFingerprint(leaf), revoked_at: null})
    // X.509 times have whole seconds; see the next test for the exact comparison.
    expect(Math.abs(new Date(dev1.record.not_before).getTime() - notBefore.getTime())).toBeLessThan(1000)
    expect(Math.abs(new Date(dev1.record.not_after).getTime() - notAfter.getTime())).toBeLessThan(1000)

    const [d90] = await issue(['dev-90'], {days: 90})
    const p90 = await savePem(work, 'dev-90.crt', d90!.certificate)
    expect(await lifetimeDays(p90)).toBeCloseTo(90, 3)

    const bulk = await issue(Array.from({length: 6}, (_, i) => `bulk-${i}`), {days: 30})
    const serials = new Set([dev1.record.serial, d90!.record.serial, ...bulk.map((b) => b.record.serial)])
    expect(serials.size).toBe(8)
    for (const s of serials) expect(BigInt(`0x${s}`).toString(2).length).toBeGreaterThanOrEqual(64)
  })

  it('the database record holds exactly the validity written in the certificate', async () => {
    // The certificate encodes notBefore/notAfter in whole seconds (UTCTime); the record must say the same.
    const {notBefore, notAfter} = await opensslDates(join(dev1Dir, 'device.crt'))
    const node = new X509Certificate(dev1.certificate)
    expect(new Date(node.validFrom).getTime()).toBe(notBefore.getTime())
    expect({not_before: dev1.record.not_before, not_after: dev1.record.not_after})
      .toEqual({not_before: notBefore.toISOString(), not_after: notAfter.toISOString()})
  })

  it('a generated key is written 0600, matches the certificate, and never reaches the database', async () => {
    const keyPath = join(dev1Dir, 'device.key')
    expect(await fileMode(keyPath)).toBe(0o600)
    expect(await fileMode(join(dev1Dir, 'device.crt'))).toBe(0o644)
    expect(dev1.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
    expect(await openssl(['pkey', '-in', keyPath, '-pubout'])).toBe(await pubkeyOfCert(join(dev1Dir, 'device.crt')))
    const dump = await dumpAllTables(db)
    expect(dump).toContain(dev1.record.serial)
    expect(dump).not.toContain('PRIVATE KEY')
    const keyBody = dev1.private_key!.split('\n')[1]!
    expect(dump).not.toContain(keyBody)
  })

  it('re-issuing into a directory whose old device.key was world-readable leaves the key 0600', async () => {
    const dir = join(work, 'rewrite')
    const {mkdir} = await import('node:fs/promises')
    await mkdir(dir, {recursive: true})
    await writeFile(join(dir, 'device.key'), 'old', {mode: 0o644})
    await writeIssued(dir, dev1)
    expect(await fileMode(join(dir, 'device.key'))).toBe(0o600)
    expect(await readFile(join(dir, 'device.key'), 'utf8')).toBe(dev1.private_key)
  })

  it('signs an openssl CSR (P-256, P-384, RSA-2048): the certificate carries the CSR key, no private key is returned', async () => {
    for (const [id, type] of [['dev-csr', 'ec-p256'], ['dev-p384', 'ec-p384'], ['dev-rsa', 'rsa-2048']] as const) {
      const csr = await opensslCsr(work, id, {type})
      const [issued] = await issue([id], {csrPem: csr.csrPem})
      expect(issued!.private_key, id).toBeUndefined()
      const crt = await savePem(work, `${id}.crt`, issued!.certificate)
      expect(await pubkeyOfCert(crt), id).toBe(await openssl(['pkey', '-in', csr.keyPath, '-pubout']))
      expect((await opensslVerify({root, untrusted: deviceCa, leaf: crt})).ok, id).toBe(true)
      expect(subjectOf(await certText(crt))).toBe(`CN = ${id}`)
    }
  })

  it('refuses bad CSRs with exit 4 and records nothing: bad signature, CN ≠ device id, RSA 1024, a key used by another device', async () => {
    const good = await opensslCsr(work, 'dev-a', {name: 'dev-a-good'})
    const der = await openssl(['req', '-in', good.csrPath, '-outform', 'DER', '-out', join(work, 'dev-a.der')]).then(() => readFile(join(work, 'dev-a.der')))
    const tampered = tamperCsrSignature(good.csrPem)
    expect(tampered.der.length).toBe(der.length)
    expect(tampered.der.equals(der)).toBe(false)
    // openssl agrees: the tampered request still parses, but its self-signature fails.
    // (OpenSSL 3.0 `req -verify` exits 0 either way; it says so on stderr.)
    const check = await opensslRun(['req', '-in', await savePem(work, 'tampered.csr', tampered.pem), '-noout', '-verify'])
    expect(check.stderr + check.stdout).toMatch(/self-signature verify failure/)
    const original = await opensslRun(['req', '-in', good.csrPath, '-noout', '-verify'])
    expect(original.stderr + original.stdout).toMatch(/self-signature verify OK/)

    const before = await certCount()
    await expectIotctlError(issue(['dev-a'], {csrPem: tampered.pem}), 4, 'E_CSR_SIGNATURE')
    const wrongCn = await opensslCsr(work, 'dev-zzz', {name: 'wrong-cn'})
    await expectIotctlError(issue(['dev-a'], {csrPem: wrongCn.csrPem}), 4, 'E_CSR_SUBJECT')
    const weak = await opensslCsr(work, 'dev-a', {type: 'rsa-1024', name: 'weak'})
    await expectIotctlError(issue(['dev-a'], {csrPem: weak.csrPem}), 4, 'E_CSR_KEY')
    expect(await certCount()).toBe(before)

    // dev-a gets its certificate; a second CSR from the same key naming dev-b is refused.
    await issue(['dev-a'], {csrPem: good.csrPem})
    const reused = await opensslCsr(work, 'dev-b', {keyPath: good.keyPath, name: 'reused'})
    await expectIotctlError(issue(['dev-b'], {csrPem: reused.csrPem}), 4, 'E_KEY_REUSED', /dev-a/)
    expect(await certCount()).toBe(before + 1)
    expect((await db.pool.query("SELECT count(*) AS n FROM certificates WHERE device_id = 'dev-b'")).rows[0].n).toBe('0')
  })

  it('a wrong passphrase is exit 3 "CA key cannot be decrypted" and records nothing', async () => {
    const before = await certCount()
    await expectIotctlError(issue(['dev-c'], {passphrase: WRONG_PASSPHRASE}), 3, 'E_CA_KEY_DECRYPT', /CA key cannot be decrypted/i)
    expect(await certCount()).toBe(before)
  })

  it('an operator certificate comes from the service intermediate; the device intermediate cannot have signed it', async () => {
    const op = await issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name: 'ci-bot', days: 30})
    expect(op.record).toMatchObject({kind: 'operator', issuer: 'service-ca', device_id: null, subject_name: 'ci-bot'})
    const opDir = join(work, 'operator')
    await writeIssued(opDir, op, 'operator')
    const leaf = join(opDir, 'operator.crt')
    const text = await certText(leaf)
    expect(issuerOf(text)).toBe(SUBJECTS['service-ca'])
    expect((await openssl(['x509', '-noout', '-issuer', '-in', leaf])).trim()).toBe(`issuer=${SUBJECTS['service-ca']}`)
    expect(extensionBlock(text, 'X509v3 Subject Alternative Name').value).toBe('URI:urn:iotctl:service:ci-bot')
    expect(extensionBlock(text, 'X509v3 Extended Key Usage').value).toBe('TLS Web Client Authentication')
    expect(keyIdOf(text, 'X509v3 Authority Key Identifier')).toBe(keyIdOf(await certText(serviceCa), 'X509v3 Subject Key Identifier'))
    expect(keyIdOf(text, 'X509v3 Authority Key Identifier')).not.toBe(keyIdOf(await certText(deviceCa), 'X509v3 Subject Key Identifier'))
    expect((await opensslVerify({root, untrusted: serviceCa, leaf})).ok).toBe(true)
    const viaDevice = await opensslVerify({root, untrusted: deviceCa, leaf})
    expect(viaDevice.ok).toBe(false)
    const node = new X509Certificate(op.certificate)
    const deviceCaCert = new X509Certificate(await readFile(deviceCa))
    expect(node.checkIssued(deviceCaCert)).toBe(false)
    expect(node.verify(deviceCaCert.publicKey)).toBe(false)
    expect(node.verify(new X509Certificate(await readFile(serviceCa)).publicKey)).toBe(true)
  })

  it('CRLs: one per CA, signed, nextUpdate = thisUpdate + 7 days, increasing numbers, revoked serials with reasons', async () => {
    const [victim] = await issue(['dev-revoked'], {days: 30})
    const victimPath = await savePem(work, 'victim.crt', victim!.certificate)
    const crlDir = join(work, 'crl')
    const first = await publishCrls(db, {caDir, passphrase: PASSPHRASE, outDir: crlDir})
    expect(first.map((c) => c.ca)).toEqual(['root', 'device-ca', 'service-ca'])
    const numbersBefore = new Map<string, bigint>()
    for (const c of first) numbersBefore.set(c.ca, (await opensslCrl(c.path)).number)
    const crlChain = join(crlDir, 'crl-chain.pem')
    expect((await opensslVerify({root, untrusted: deviceCa, leaf: victimPath, crlFile: crlChain})).ok).toBe(true)

    await revokeCertificates(db, {serial: victim!.record.serial}, 'keyCompromise')
    const [other] = await issue(['dev-aff'], {days: 30})
    await revokeCertificates(db, {deviceId: 'dev-aff'}, 'affiliationChanged')
    const [gone] = await issue(['dev-gone'], {days: 30})
    await deprovisionDevice(db, 'dev-gone')
    const [rotatedAway] = await issue(['dev-rot'], {days: 30})
    await rotateDeviceCertificate(db, {caDir, passphrase: PASSPHRASE, deviceId: 'dev-rot', graceMs: 0, days: 30}) // swept by publishCrls
    const second = await publishCrls(db, {caDir, passphrase: PASSPHRASE, outDir: crlDir})
    expect((await readdir(crlDir)).sort()).toEqual(['crl-chain.pem', 'device-ca.crl.pem', 'root.crl.pem', 'service-ca.crl.pem'])
    for (const c of second) {
      const crl = await opensslCrl(c.path)
      expect(crl.number, c.ca).toBeGreaterThan(numbersBefore.get(c.ca)!)
      expect(crl.number, c.ca).toBe(BigInt(c.number))
      expect(crl.nextUpdate.getTime() - crl.lastUpdate.getTime(), c.ca).toBe(7 * DAY_MS)
      const issuerCert = join(caDir, `${c.ca}.crt`)
      const issuerPem = c.ca === 'root' ? issuerCert : await savePem(work, `${c.ca}-bundle.pem`, (await readFile(issuerCert, 'utf8')) + (await readFile(root, 'utf8')))
      const verified = await opensslRun(['crl', '-in', c.path, '-noout', '-CAfile', issuerPem])
      expect(verified.stderr + verified.stdout, c.ca).toMatch(/verify OK/)
      expect(crl.text).toMatch(new RegExp(`Issuer: ${SUBJECTS[c.ca as keyof typeof SUBJECTS]}`))
      expect(crl.text).toMatch(/X509v3 Authority Key Identifier/)
    }
    const deviceCrl = await opensslCrl(join(crlDir, 'device-ca.crl.pem'))
    const entries = crlEntries(deviceCrl.text)
    expect(entries.get(victim!.record.serial)).toBe('Key Compromise')
    expect(entries.get(other!.record.serial)).toBe('Affiliation Changed')
    expect(entries.get(gone!.record.serial)).toBe('Cessation Of Operation')
    expect(entries.get(rotatedAway!.record.serial)).toBe('Superseded')
    expect(entries.has(dev1.record.serial)).toBe(false)
    expect((await opensslCrl(join(crlDir, 'root.crl.pem'))).text).toMatch(/No Revoked Certificates/)

    // openssl verify with every CRL in the chain file.
    const revoked = await opensslVerify({root, untrusted: deviceCa, leaf: victimPath, crlFile: crlChain})
    expect(revoked.ok).toBe(false)
    expect(revoked.stdout + revoked.stderr).toMatch(/certificate revoked/)
    expect((await opensslVerify({root, untrusted: deviceCa, leaf: join(dev1Dir, 'device.crt'), crlFile: crlChain})).ok).toBe(true)
    const opLeaf = join(work, 'operator', 'operator.crt')
    expect((await opensslVerify({root, untrusted: serviceCa, leaf: opLeaf, crlFile: crlChain})).ok).toBe(true)
  })
})

// openssl's own view of DER, for the CSR tamper helper: the last byte of a CSR is in the signature.
describe('tamperCsrSignature helper', () => {
  it('changes only the signature: the request info is unchanged', async () => {
    const dir = await tempDir('ossl-tamper')
    try {
      const csr = await opensslCsr(dir, 'dev-t')
      const tampered = tamperCsrSignature(csr.csrPem)
      const path = join(dir, 't.csr')
      await writeFile(path, tampered.pem)
      const subj = await openssl(['req', '-in', path, '-noout', '-subject'])
      expect(subj.trim()).toBe('subject=CN = dev-t')
      expect(await openssl(['req', '-in', path, '-noout', '-pubkey'])).toBe(await openssl(['req', '-in', csr.csrPath, '-noout', '-pubkey']))
      expect((await stat(path)).size).toBeGreaterThan(0)
    } finally {
      await cleanup(dir)
    }
  })
})
