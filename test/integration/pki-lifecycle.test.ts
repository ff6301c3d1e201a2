import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connectClient} from '../../src/lib/db/pool.js'
import {loadSigningCa} from '../../src/lib/pki/ca.js'
import {
  assertReason, deviceIssuer, initCa, issueDeviceCertificates, issueOperatorCertificate, listCertificates, publishCrls,
  revokeCertificates, rotateDeviceCertificate, supersedePredecessors, type CertificateRecord, type IssuedCertificate,
} from '../../src/lib/pki/index.js'
import {deprovisionDevice, importDevices, parseImport, registerDevice, toDeviceInput} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {
  cleanup, DAY_MS, dumpAllTables, expectIotctlError, PASSPHRASE, registerDevices, tempDir, WRONG_PASSPHRASE,
} from '../helpers/pki-fixtures.js'
import {failEachTestWithoutOpenssl, opensslCsr} from '../helpers/pki-openssl.js'

// openssl is the independent judge here: without it every test fails (never skips).
failEachTestWithoutOpenssl()

describe('certificate lifecycle on PostgreSQL (lib level)', () => {
  let db: TestDatabase
  let base: string
  let caDir: string

  const issue = async (id: string, days = 365, extra: {csrPem?: string} = {}): Promise<IssuedCertificate> =>
    (await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: [id], days, ...extra}))[0]!
  const record = async (serial: string): Promise<CertificateRecord> => {
    const [r] = (await listCertificates(db, {limit: 10_000})).filter((c) => c.serial === serial)
    if (!r) throw new Error(`no certificate ${serial}`)
    return r
  }
  const certCount = async () => Number((await db.pool.query('SELECT count(*) AS n FROM certificates')).rows[0].n)
  const withClient = async <T>(fn: (c: Awaited<ReturnType<typeof connectClient>>) => Promise<T>): Promise<T> => {
    const client = await connectClient(db.pool, db.url)
    try {
      return await fn(client)
    } finally {
      client.release()
    }
  }

  beforeAll(async () => {
    db = await freshDatabase()
    base = await tempDir('lifecycle')
    caDir = join(base, 'ca')
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    await registerDevices(db, ['l-short', 'l-long', 'v-1', 'v-2', 'r-grace', 'r-sweep', 'r-now', 'd-1', 'k-1', 'k-2', 'b-1', 'b-2', 'w-1'])
  })
  afterAll(async () => {
    await db?.drop()
    await cleanup(base)
  })

  describe('list', () => {
    let short: IssuedCertificate
    let long: IssuedCertificate
    beforeAll(async () => {
      short = await issue('l-short', 10)
      long = await issue('l-long', 365)
    })

    it('filters by device', async () => {
      const rows = await listCertificates(db, {deviceId: 'l-short', limit: 100})
      expect(rows.map((r) => r.serial)).toEqual([short.record.serial])
      expect(rows[0]).toEqual(short.record)
      expect(await listCertificates(db, {deviceId: 'no-such-device', limit: 100})).toEqual([])
    })

    it('--expiring-within 30d finds the 10-day certificate, not the 365-day one; soonest first', async () => {
      const soon = await listCertificates(db, {expiringWithinMs: 30 * DAY_MS, limit: 100})
      const serials = soon.map((r) => r.serial)
      expect(serials).toContain(short.record.serial)
      expect(serials).not.toContain(long.record.serial)
      const all = await listCertificates(db, {expiringWithinMs: 400 * DAY_MS, limit: 100})
      const i = all.findIndex((r) => r.serial === short.record.serial)
      const j = all.findIndex((r) => r.serial === long.record.serial)
      expect(i).toBeGreaterThanOrEqual(0)
      expect(j).toBeGreaterThan(i)
      const sorted = [...all].sort((a, b) => a.not_after.localeCompare(b.not_after))
      expect(all.map((r) => r.not_after)).toEqual(sorted.map((r) => r.not_after))
      expect(await listCertificates(db, {limit: 1})).toHaveLength(1)
    })

    it('the lifetime is --days from now (default 365 days in the CLI)', async () => {
      const lifetime = (r: CertificateRecord) => (new Date(r.not_after).getTime() - new Date(r.not_before).getTime() - 3_600_000) / DAY_MS
      expect(lifetime(short.record)).toBeCloseTo(10, 4)
      expect(lifetime(long.record)).toBeCloseTo(365, 4)
      expect(Math.abs(new Date(long.record.not_before).getTime() - (Date.now() - 3_600_000))).toBeLessThan(120_000)
    })
  })

  describe('revoke', () => {
    it('by serial with a reason (colons and upper case accepted); a second revoke changes nothing', async () => {
      const c = await issue('v-1')
      const colons = c.record.serial.toUpperCase().match(/../g)!.join(':')
      const [revoked] = await revokeCertificates(db, {serial: colons}, 'keyCompromise')
      expect(revoked).toMatchObject({serial: c.record.serial, status: 'revoked', revocation_reason: 'keyCompromise'})
      expect(revoked!.revoked_at).not.toBeNull()
      const [again] = await revokeCertificates(db, {serial: c.record.serial}, 'superseded')
      expect(again).toMatchObject({revocation_reason: 'keyCompromise', revoked_at: revoked!.revoked_at})
      expect((await listCertificates(db, {status: 'revoked', limit: 100})).map((r) => r.serial)).toContain(c.record.serial)
      expect((await listCertificates(db, {expiringWithinMs: 400 * DAY_MS, limit: 100})).map((r) => r.serial)).not.toContain(c.record.serial)
    })

    it("by device: every active certificate of it, with the reason", async () => {
      const a = await issue('v-2')
      const b = await issue('v-2')
      const revoked = await revokeCertificates(db, {deviceId: 'v-2'}, 'privilegeWithdrawn')
      expect(revoked.map((r) => r.serial).sort()).toEqual([a.record.serial, b.record.serial].sort())
      expect(revoked.every((r) => r.status === 'revoked' && r.revocation_reason === 'privilegeWithdrawn')).toBe(true)
    })

    it('unknown serial or device → exit 3; malformed serial or reason → exit 4', async () => {
      await expectIotctlError(revokeCertificates(db, {serial: 'ab'.repeat(16)}, 'unspecified'), 3, 'E_CERT_NOT_FOUND')
      await expectIotctlError(revokeCertificates(db, {deviceId: 'no-such-device'}, 'unspecified'), 3, 'E_CERT_NOT_FOUND')
      await expectIotctlError(revokeCertificates(db, {serial: 'xyz'}, 'unspecified'), 4, 'E_SERIAL')
      expect(() => assertReason('because')).toThrowError(/unknown revocation reason/)
      expect(assertReason('cessationOfOperation')).toBe('cessationOfOperation')
    })
  })

  describe('CRLs', () => {
    it('written to CA_DIR/crl by default, for root and both intermediates, numbers +1 per run, 7 days', async () => {
      const first = await publishCrls(db, {caDir, passphrase: PASSPHRASE})
      expect(first.map((c) => c.ca)).toEqual(['root', 'device-ca', 'service-ca'])
      for (const c of first) {
        expect(c.path).toBe(join(caDir, 'crl', `${c.ca}.crl.pem`))
        expect(new Date(c.next_update).getTime() - new Date(c.this_update).getTime()).toBe(7 * DAY_MS)
        expect((await readFile(c.path, 'utf8')).startsWith('-----BEGIN X509 CRL-----\n')).toBe(true)
      }
      const chain = await readFile(join(caDir, 'crl', 'crl-chain.pem'), 'utf8')
      expect(chain.match(/-----BEGIN X509 CRL-----/g)).toHaveLength(3)
      const revokedByDeviceCa = Number((await db.pool.query("SELECT count(*) AS n FROM certificates WHERE issuer = 'device-ca' AND status = 'revoked'")).rows[0].n)
      expect(first.find((c) => c.ca === 'device-ca')!.entries).toBe(revokedByDeviceCa)
      expect(first.find((c) => c.ca === 'root')!.entries).toBe(0)
      const second = await publishCrls(db, {caDir, passphrase: PASSPHRASE})
      expect(second.map((c) => c.number)).toEqual(first.map((c) => c.number + 1))
    })

    it('concurrent runs never reuse a CRL number', async () => {
      const runs = await Promise.all([1, 2, 3].map(() => publishCrls(db, {caDir, passphrase: PASSPHRASE, outDir: join(base, 'crl-concurrent')})))
      const deviceNumbers = runs.map((r) => r.find((c) => c.ca === 'device-ca')!.number)
      expect(new Set(deviceNumbers).size).toBe(3)
    })

    it('a wrong passphrase is exit 3, signs nothing and consumes no CRL number', async () => {
      const path = join(caDir, 'crl', 'device-ca.crl.pem')
      const before = await stat(path)
      const numbers = (await db.pool.query('SELECT ca, number FROM crl_numbers ORDER BY ca')).rows
      // Whichever of the three CA keys fails first is named; see the next test for the wording.
      await expectIotctlError(publishCrls(db, {caDir, passphrase: WRONG_PASSPHRASE}), 3, 'E_CA_KEY_DECRYPT', /key cannot be decrypted/i)
      expect((await stat(path)).mtimeMs).toBe(before.mtimeMs)
      expect((await db.pool.query('SELECT ca, number FROM crl_numbers ORDER BY ca')).rows).toEqual(numbers)
    })
  })

  describe('CA key decryption errors', () => {
    it.each(['root', 'device-ca', 'service-ca'] as const)('a wrong passphrase for the %s key says "CA key cannot be decrypted" (exit 3)', async (role) => {
      // `certs crl` decrypts all three; the issue's wording is "CA key cannot be decrypted".
      await expectIotctlError(loadSigningCa(caDir, role, WRONG_PASSPHRASE), 3, 'E_CA_KEY_DECRYPT', /CA key cannot be decrypted/i)
    })
  })

  describe('rotate', () => {
    it('the new certificate is valid and the old one stays valid until supersedePredecessors(newSerial)', async () => {
      const old = await issue('r-grace')
      const {issued, superseding} = await rotateDeviceCertificate(db, {caDir, passphrase: PASSPHRASE, deviceId: 'r-grace', graceMs: DAY_MS, days: 30})
      expect(superseding).toEqual([old.record.serial])
      expect(issued.record).toMatchObject({device_id: 'r-grace', status: 'active'})
      expect(issued.private_key).toMatch(/PRIVATE KEY/)
      const before = await record(old.record.serial)
      expect(before).toMatchObject({status: 'active', replaced_by: issued.record.serial})
      expect(new Date(before.supersede_after!).getTime() - Date.now()).toBeGreaterThan(DAY_MS - 120_000)
      await publishCrls(db, {caDir, passphrase: PASSPHRASE}) // grace not over: nothing is swept
      expect((await record(old.record.serial)).status).toBe('active')

      expect(await withClient((c) => supersedePredecessors(c, issued.record.serial))).toEqual([old.record.serial])
      expect(await record(old.record.serial)).toMatchObject({status: 'revoked', revocation_reason: 'superseded'})
      expect((await record(issued.record.serial)).status).toBe('active')
      expect(await withClient((c) => supersedePredecessors(c, issued.record.serial))).toEqual([])
    })

    it('when the grace period ends, `certs crl` revokes the old certificate as superseded', async () => {
      const old = await issue('r-sweep')
      const {issued} = await rotateDeviceCertificate(db, {caDir, passphrase: PASSPHRASE, deviceId: 'r-sweep', graceMs: 0, days: 30})
      expect((await record(old.record.serial)).status).toBe('active')
      const crls = await publishCrls(db, {caDir, passphrase: PASSPHRASE})
      expect(await record(old.record.serial)).toMatchObject({status: 'revoked', revocation_reason: 'superseded'})
      expect((await record(issued.record.serial)).status).toBe('active')
      const revoked = Number((await db.pool.query("SELECT count(*) AS n FROM certificates WHERE issuer = 'device-ca' AND status = 'revoked'")).rows[0].n)
      expect(crls.find((c) => c.ca === 'device-ca')!.entries).toBe(revoked)
    })

    it('a wrong passphrase is exit 3 and marks nothing for supersession', async () => {
      const old = await issue('r-now')
      await expectIotctlError(rotateDeviceCertificate(db, {caDir, passphrase: WRONG_PASSPHRASE, deviceId: 'r-now', graceMs: 0, days: 30}), 3, 'E_CA_KEY_DECRYPT')
      expect(await record(old.record.serial)).toMatchObject({status: 'active', replaced_by: null, supersede_after: null})
      expect(await listCertificates(db, {deviceId: 'r-now', limit: 10})).toHaveLength(1)
    })
  })

  describe('deprovision and the devices that may get certificates', () => {
    it("deprovision revokes the device's certificates (cessationOfOperation); it then gets no new ones (exit 3)", async () => {
      const a = await issue('d-1')
      const b = await issue('d-1')
      const gone = await deprovisionDevice(db, 'd-1')
      expect(gone.status).toBe('deprovisioned')
      expect(gone.revoked_certificates.sort()).toEqual([a.record.serial, b.record.serial].sort())
      for (const s of [a, b]) expect(await record(s.record.serial)).toMatchObject({status: 'revoked', revocation_reason: 'cessationOfOperation'})
      const before = await certCount()
      await expectIotctlError(issue('d-1'), 3, 'E_DEVICE_DEPROVISIONED')
      await expectIotctlError(rotateDeviceCertificate(db, {caDir, passphrase: PASSPHRASE, deviceId: 'd-1', graceMs: 0, days: 30}), 3, 'E_DEVICE_DEPROVISIONED')
      expect(await certCount()).toBe(before)
      expect((await deprovisionDevice(db, 'd-1')).revoked_certificates).toEqual([])
    })

    it('unknown device → 3; invalid id → 4; reserved names (svc-x, admin) → 4 at register and at issue', async () => {
      const before = await certCount()
      await expectIotctlError(issue('never-registered'), 3, 'E_DEVICE_NOT_FOUND')
      await expectIotctlError(issue('Bad/Id'), 4, 'E_DEVICE_ID')
      for (const name of ['svc-x', 'admin']) {
        expect(() => toDeviceInput({device_id: name, device_type: 'thermostat'})).toThrowError(expect.objectContaining({code: 'E_RESERVED_NAME', exitCode: 4}))
        await expectIotctlError(issue(name), 4, 'E_RESERVED_NAME')
      }
      expect(await certCount()).toBe(before)
      // The reserved prefix is for services: an operator identity may use it.
      const op = await issueOperatorCertificate(db, {caDir, passphrase: PASSPHRASE, name: 'svc-ingest', days: 30})
      expect(op.record).toMatchObject({kind: 'operator', issuer: 'service-ca', subject_name: 'svc-ingest'})
    })

    it('a batch is all or nothing: one unknown device means no certificate for the others', async () => {
      const before = await certCount()
      await expectIotctlError(issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ['b-1', 'b-2', 'ghost'], days: 30}), 3, 'E_DEVICE_NOT_FOUND')
      expect(await certCount()).toBe(before)
      const ok = await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ['b-1', 'b-2'], days: 30})
      expect(ok.map((c) => c.record.device_id)).toEqual(['b-1', 'b-2'])
    })

    it('a key may be re-certified for the same device, never for another one', async () => {
      const dir = join(base, 'csr')
      const {mkdir} = await import('node:fs/promises')
      await mkdir(dir, {recursive: true})
      const first = await opensslCsr(dir, 'k-1')
      const a = await issue('k-1', 30, {csrPem: first.csrPem})
      const b = await issue('k-1', 30, {csrPem: first.csrPem})
      expect(b.record.public_key_sha256).toBe(a.record.public_key_sha256)
      const other = await opensslCsr(dir, 'k-2', {keyPath: first.keyPath, name: 'k-2-reused'})
      await expectIotctlError(issue('k-2', 30, {csrPem: other.csrPem}), 4, 'E_KEY_REUSED')
    })
  })

  describe('import with certificates (one transaction)', () => {
    const csv = (ids: string[]) => `device_id,device_type\n${ids.map((id) => `${id},sensor`).join('\n')}\n`

    it('issues a certificate for every imported device', async () => {
      const rows = await parseImport(csv(['imp-1', 'imp-2', 'imp-3']), 'csv')
      const issuer = await deviceIssuer({caDir, passphrase: PASSPHRASE, days: 30})
      let issued: IssuedCertificate[] = []
      const result = await importDevices(db, rows, 'fail', async (client, ids) => void (issued = await issuer(client, ids)))
      expect(result.inserted).toBe(3)
      expect(issued.map((c) => c.record.device_id)).toEqual(['imp-1', 'imp-2', 'imp-3'])
      expect(issued.every((c) => c.private_key?.startsWith('-----BEGIN PRIVATE KEY-----'))).toBe(true)
    })

    it('a failure while issuing rolls back the devices and the certificates', async () => {
      // One CSR for two devices: the first matches, the second fails (CN ≠ id) inside the transaction.
      const dir = join(base, 'csr-import')
      const {mkdir} = await import('node:fs/promises')
      await mkdir(dir, {recursive: true})
      const {csrPem} = await opensslCsr(dir, 'imp-x1')
      const rows = await parseImport(csv(['imp-x1', 'imp-x2']), 'csv')
      const issuer = await deviceIssuer({caDir, passphrase: PASSPHRASE, days: 30, csrPem})
      const before = await certCount()
      await expectIotctlError(importDevices(db, rows, 'fail', async (client, ids) => void (await issuer(client, ids))), 4, 'E_CSR_SUBJECT')
      expect(await certCount()).toBe(before)
      expect((await db.pool.query("SELECT device_id FROM devices WHERE device_id LIKE 'imp-x%'")).rows).toEqual([])
    })

    it('a wrong passphrase fails before anything is imported (exit 3)', async () => {
      await expectIotctlError(deviceIssuer({caDir, passphrase: WRONG_PASSPHRASE, days: 30}), 3, 'E_CA_KEY_DECRYPT')
    })
  })

  it('after all of this, no private key is anywhere in the database', async () => {
    await registerDevice(db, toDeviceInput({device_id: 'w-2', device_type: 'thermostat'}))
    const issued = await issue('w-2')
    const dump = await dumpAllTables(db)
    expect(dump).toContain(issued.record.fingerprint_sha256)
    expect(dump).not.toMatch(/PRIVATE KEY/)
    expect(dump).not.toContain(issued.private_key!.split('\n')[1]!)
  })
})
