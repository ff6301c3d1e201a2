import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connectClient} from '../../src/lib/db/pool.js'
import {loadSigningCa} from '../../src/lib/pki/ca.js'
import {
  initCa, issueDeviceCertificates, issueOperatorCertificate, publishCrls, revokeCertificates, rotateDeviceCertificate,
  supersedePredecessors, type IssuedCertificate,
} from '../../src/lib/pki/index.js'
import {exportPrivateKey, generateKeyPair} from '../../src/lib/pki/keys.js'
import {createCertificate, type Profile} from '../../src/lib/pki/profiles.js'
import {deprovisionDevice} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {caPem, cleanup, DAY_MS, PASSPHRASE, registerDevices, tempDir} from '../helpers/pki-fixtures.js'
import {connectDevice, splitPemBlocks, startMtlsServer, type MtlsServer, type ServerVerdict} from '../helpers/pki-tls.js'

interface Credential {
  cert: string
  key: string
}

const fromIssued = (i: IssuedCertificate): Credential => ({cert: i.certificate + i.chain, key: i.private_key!})

/** A leaf signed directly by the CA dir's device intermediate, bypassing the issuing rules. */
async function handMadeLeaf(caDir: string, profile: Profile, cn: string, options: {now?: Date; days: number}): Promise<Credential> {
  const ca = await loadSigningCa(caDir, 'device-ca', PASSPHRASE)
  const keys = await generateKeyPair('ec-p256')
  const cert = await createCertificate({subject: `CN=${cn}`, issuer: ca.name, publicKey: keys.publicKey, issuerPublicKey: ca.publicKey,
    signingKey: ca.signingKey, signingAlgorithm: ca.signingAlgorithm, profile, days: options.days, now: options.now})
  return {cert: cert.pem + ca.pem, key: await exportPrivateKey(keys.privateKey)}
}

const UNKNOWN_ISSUER = ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'DEPTH_ZERO_SELF_SIGNED_CERT']

describe('mutual TLS 1.3 with the CA hierarchy, CRLs and Node tls', () => {
  let db: TestDatabase
  let caDir: string
  let otherCaDir: string
  let crlDir: string
  let server: MtlsServer
  let clientCa: string
  const creds: Record<string, Credential> = {}
  let revokedSerial: string

  async function restartServer(): Promise<void> {
    await server?.close()
    await publishCrls(db, {caDir, passphrase: PASSPHRASE, outDir: crlDir})
    const chain = await readFile(join(crlDir, 'crl-chain.pem'), 'utf8')
    const crls = splitPemBlocks(chain)
    expect(crls.map((c) => c.split('\n')[0])).toEqual(Array(3).fill('-----BEGIN X509 CRL-----'))
    server = await startMtlsServer({caDir, passphrase: PASSPHRASE, crl: crls})
  }

  /** Connect with a credential; the client trusts root + service CA; returns the server's verdict. */
  async function verdict(cred: Credential | undefined): Promise<ServerVerdict> {
    const outcome = await connectDevice(server.port, {...cred, ca: clientCa})
    expect(outcome.connected, `the client refused the broker: ${outcome.errorCode}`).toBe(true)
    expect(outcome.protocol).toBe('TLSv1.3')
    return server.verdictFor(outcome.localPort!)
  }

  beforeAll(async () => {
    db = await freshDatabase()
    caDir = join(await tempDir('tls-ca'), 'ca')
    otherCaDir = join(await tempDir('tls-other'), 'ca')
    crlDir = await tempDir('tls-crl')
    await Promise.all([
      initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false}),
      initCa({dir: otherCaDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false}),
    ])
    clientCa = await caPem(caDir, 'root.crt', 'service-ca.crt')
    await registerDevices(db, ['dev-good', 'dev-revoked', 'dev-foreign', 'dev-gone', 'dev-rot'])
    const issue = async (id: string, caDirForIssue = caDir) =>
      (await issueDeviceCertificates(db, {caDir: caDirForIssue, passphrase: PASSPHRASE, deviceIds: [id], days: 30}))[0]!
    creds.good = fromIssued(await issue('dev-good'))
    const revoked = await issue('dev-revoked')
    revokedSerial = revoked.record.serial
    creds.revoked = fromIssued(revoked)
    await revokeCertificates(db, {serial: revokedSerial}, 'keyCompromise')
    creds.gone = fromIssued(await issue('dev-gone'))
    await deprovisionDevice(db, 'dev-gone')
    creds.foreign = fromIssued(await issue('dev-foreign', otherCaDir))
    creds.operator = fromIssued(await issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name: 'ci-bot', days: 30}))
    creds.expired = await handMadeLeaf(caDir, {kind: 'device', deviceId: 'dev-expired'}, 'dev-expired', {now: new Date(Date.now() - 400 * DAY_MS), days: 1})
    creds.serverOnly = await handMadeLeaf(caDir, {kind: 'server', names: []}, 'dev-server-only', {days: 30})
    await restartServer()
  })

  afterAll(async () => {
    await server?.close()
    await db?.drop()
    await cleanup(caDir && join(caDir, '..'), otherCaDir && join(otherCaDir, '..'), crlDir)
  })

  it('an issued device certificate is authorized (TLS 1.3, CN = device id)', async () => {
    expect(await verdict(creds.good)).toEqual({authorized: true, authorizationError: null, peerCn: 'dev-good'})
  })

  it('a revoked certificate is refused after `certs crl`: CERT_REVOKED', async () => {
    expect(await verdict(creds.revoked)).toMatchObject({authorized: false, authorizationError: 'CERT_REVOKED'})
  })

  it("a deprovisioned device's certificate is refused after the next CRL: CERT_REVOKED", async () => {
    expect(await verdict(creds.gone)).toMatchObject({authorized: false, authorizationError: 'CERT_REVOKED'})
  })

  it('an expired device certificate is refused: CERT_HAS_EXPIRED', async () => {
    expect(await verdict(creds.expired)).toMatchObject({authorized: false, authorizationError: 'CERT_HAS_EXPIRED'})
  })

  it('a certificate from another CA (same names, other keys) is refused as of unknown issuer', async () => {
    // The leaf alone, as most devices send it: no issuer can be found in the broker's trust store.
    const end = creds.foreign!.cert.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length
    const leafOnly = {cert: creds.foreign!.cert.slice(0, end), key: creds.foreign!.key}
    const alone = await verdict(leafOnly)
    expect(alone.authorized).toBe(false)
    expect(UNKNOWN_ISSUER).toContain(alone.authorizationError) // OpenSSL 3.0: UNABLE_TO_VERIFY_LEAF_SIGNATURE
    // With its own chain attached OpenSSL reports the last of several errors: the self-signed
    // foreign root in the chain, or (with CRL checking) the missing CRL for the foreign CAs.
    const withChain = await verdict(creds.foreign)
    expect(withChain.authorized).toBe(false)
    expect([...UNKNOWN_ISSUER, 'UNABLE_TO_GET_CRL']).toContain(withChain.authorizationError)
  })

  it('a serverAuth-only leaf from the device CA is not accepted as a client: INVALID_PURPOSE', async () => {
    expect(await verdict(creds.serverOnly)).toMatchObject({authorized: false, authorizationError: 'INVALID_PURPOSE'})
  })

  it('a client without a certificate is not authorized', async () => {
    expect((await verdict(undefined)).authorized).toBe(false)
  })

  it('a service identity (service CA, clientAuth) chains to the same root and is authorized', async () => {
    expect(await verdict(creds.operator)).toEqual({authorized: true, authorizationError: null, peerCn: 'ci-bot'})
  })

  it("the client verifies the broker: trusting only another CA's root fails", async () => {
    const outcome = await connectDevice(server.port, {...creds.good, ca: await caPem(otherCaDir, 'root.crt')})
    expect(outcome.connected).toBe(false)
    expect(outcome.errorCode).toMatch(/^(UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_GET_ISSUER_CERT|CERT_SIGNATURE_FAILURE|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/)
  })

  it("the client verifies the broker's name: SAN localhost and 127.0.0.1 only", async () => {
    const wrongName = await connectDevice(server.port, {...creds.good, ca: clientCa, servername: 'broker.evil.example'})
    expect(wrongName).toMatchObject({connected: false, errorCode: 'ERR_TLS_CERT_ALTNAME_INVALID'})
  })

  it('crl-chain.pem given to Node as ONE string loads only its first CRL (root): every device certificate then fails UNABLE_TO_GET_CRL', async () => {
    // Node's SecureContext.addCRL reads a single CRL per string; consumers must split the file.
    const single = await startMtlsServer({caDir, passphrase: PASSPHRASE, crl: await readFile(join(crlDir, 'crl-chain.pem'), 'utf8')})
    try {
      const outcome = await connectDevice(single.port, {...creds.good, ca: clientCa})
      expect(outcome.connected).toBe(true)
      expect(await single.verdictFor(outcome.localPort!)).toMatchObject({authorized: false, authorizationError: 'UNABLE_TO_GET_CRL'})
    } finally {
      await single.close()
    }
  })

  it('rotation: old and new both work until supersedePredecessors, then the old one is revoked (superseded)', async () => {
    const first = (await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ['dev-rot'], days: 30}))[0]!
    const {issued: second, superseding} = await rotateDeviceCertificate(db, {caDir, passphrase: PASSPHRASE, deviceId: 'dev-rot', graceMs: DAY_MS, days: 30})
    expect(superseding).toEqual([first.record.serial])
    await restartServer() // the grace period has not ended: nothing is swept
    expect((await verdict(fromIssued(first))).authorized).toBe(true)
    expect((await verdict(fromIssued(second))).authorized).toBe(true)

    const client = await connectClient(db.pool, db.url)
    try {
      expect(await supersedePredecessors(client, second.record.serial)).toEqual([first.record.serial])
    } finally {
      client.release()
    }
    await restartServer()
    expect(await verdict(fromIssued(first))).toMatchObject({authorized: false, authorizationError: 'CERT_REVOKED'})
    expect((await verdict(fromIssued(second))).authorized).toBe(true)
    // Earlier verdicts still hold with the new CRL.
    expect((await verdict(creds.good)).authorized).toBe(true)
    expect((await verdict(creds.revoked)).authorizationError).toBe('CERT_REVOKED')
  })
})
