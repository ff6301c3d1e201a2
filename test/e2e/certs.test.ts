import {readdir, readFile, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {issueDeviceCertificates} from '../../src/lib/pki/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, mapLimit, type Cli} from '../helpers/e2e-expect.js'
import {cleanup, DAY_MS, fileMode, HOUR_MS, listDir, PASSPHRASE, registerDevices, tempDir, WRONG_PASSPHRASE} from '../helpers/pki-fixtures.js'
import {
  crlEntries, openssl, opensslCrl, opensslCsr, opensslDates, opensslFingerprint, opensslVerify, failEachTestWithoutOpenssl, savePem,
  tamperCsrSignature,
} from '../helpers/pki-openssl.js'

// openssl is the independent judge here: without it every test fails (never skips).
failEachTestWithoutOpenssl()


interface CertRecord {
  serial: string
  issuer: string
  kind: string
  device_id: string | null
  subject_name: string
  fingerprint_sha256: string
  not_before: string
  not_after: string
  status: string
  revocation_reason: string | null
  replaced_by: string | null
}
interface IssueResult {
  record: CertRecord
  certificate: string
  chain: string
  private_key?: string
  files: string[]
}

const NO_PASSPHRASE = {IOTCTL_CA_PASSPHRASE: undefined}

describe('iotctl ca and certs (spawned CLI, real PostgreSQL, openssl as judge)', () => {
  let db: TestDatabase
  let cli: Cli
  let home: string
  let caDir: string
  let work: string
  let initResult: Array<{role: string; key: string; sha256: string}>
  const root = () => join(caDir, 'root.crt')
  const deviceCa = () => join(caDir, 'device-ca.crt')

  const issueJson = async (args: string[]) => expectOk<IssueResult>(await cli(['certs', 'issue', ...args, '-o', 'json']))
  const list = async (args: string[] = []) => expectOk<CertRecord[]>(await cli(['certs', 'list', '-o', 'json', ...args]))
  /** Straight from the database (cheaper than spawning `certs list` for every check). */
  const rowsOf = async (deviceId: string) =>
    (await db.pool.query<{serial: string; status: string; revocation_reason: string | null}>(
      'SELECT serial, status, revocation_reason FROM certificates WHERE device_id = $1 ORDER BY created_at', [deviceId])).rows
  /** Independent CLI runs, two at a time. */
  const runAll = (calls: Array<[string[], Parameters<Cli>[1]?]>) => mapLimit(calls, 2, ([args, options]) => cli(args, options))

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli, home} = await boundCli(db.url, {IOTCTL_CA_PASSPHRASE: PASSPHRASE}))
    caDir = join(home, 'ca')
    work = await tempDir('e2e-certs')
    initResult = expectOk(await cli(['ca', 'init', '-o', 'json']))
    // `devices register` has its own e2e tests; here the registry is filled through the library.
    await registerDevices(db, ['dev-1', 'dev-10', 'dev-csr', 'dev-stdin', 'dev-der', 'dev-bad', 'dev-k1', 'dev-rev', 'dev-gone',
      'dev-rot', 'dev-pw', 'dev-pf'])
  })
  afterAll(async () => {
    await db?.drop()
    await cleanup(home, work)
  })

  describe('ca init / show', () => {
    it('ca init wrote the hierarchy under IOTCTL_HOME/ca with encrypted 0600 keys', async () => {
      for (const role of ['root', 'device-ca', 'service-ca', 'server']) {
        const key = await readFile(join(caDir, `${role}.key`), 'utf8')
        expect(key.startsWith('-----BEGIN ENCRYPTED PRIVATE KEY-----'), role).toBe(true)
        expect(await fileMode(join(caDir, `${role}.key`)), role).toBe(0o600)
      }
      expect(JSON.parse(await readFile(join(caDir, 'ca.json'), 'utf8')).keyType).toBe('ec-p256')
      expect(initResult.map((i) => [i.role, i.key])).toEqual(['root', 'device-ca', 'service-ca', 'server'].map((r) => [r, 'ec prime256v1']))
      expect(initResult[0]!.sha256).toBe(await opensslFingerprint(root()))
      expect(await openssl(['x509', '-noout', '-text', '-in', root()])).toContain('ASN1 OID: prime256v1')
    })

    it('ca show -o json: fingerprints equal `openssl x509 -fingerprint -sha256`, with subjects and expiry', async () => {
      const infos = expectOk<Array<{role: string; subject: string; sha256: string; not_after: string}>>(await cli(['ca', 'show', '-o', 'json'], {env: NO_PASSPHRASE}))
      expect(infos.map((i) => i.role)).toEqual(['root', 'device-ca', 'service-ca', 'server'])
      for (const info of infos) {
        const path = join(caDir, `${info.role}.crt`)
        expect(info.sha256).toBe(await opensslFingerprint(path))
        expect(new Date(info.not_after).getTime()).toBe((await opensslDates(path)).notAfter.getTime())
      }
      expect(infos[0]!.subject).toMatch(/iotctl Root CA/)
    })

    it('ca show (table) prints subjects, fingerprints and expiry; no passphrase needed', async () => {
      const r = await cli(['ca', 'show'], {env: NO_PASSPHRASE})
      expect(r.code, describeRun(r)).toBe(0)
      const [head, ...rows] = r.stdout.trimEnd().split('\n')
      expect(head!.trim().split(/\s{2,}/)).toEqual(['ROLE', 'SUBJECT', 'KEY', 'NOT_AFTER', 'SHA256'])
      expect(rows).toHaveLength(4)
      for (const [i, role] of ['root', 'device-ca', 'service-ca', 'server'].entries()) {
        const path = join(caDir, `${role}.crt`)
        expect(rows[i]).toMatch(new RegExp(`^${role}\\s`))
        expect(rows[i]).toContain(await opensslFingerprint(path))
        expect(rows[i]).toContain((await opensslDates(path)).notAfter.toISOString())
      }
      expect(r.stdout).toMatch(/iotctl Device CA/)
    })

    it('ca init on an existing CA is exit 5 (conflict) and changes nothing', async () => {
      const before = await opensslFingerprint(root())
      const error = expectJsonError(await cli(['ca', 'init', '--json']), 5, 'E_CA_EXISTS')
      expect(error.hint).toMatch(/--force/)
      expect(await opensslFingerprint(root())).toBe(before)
    })

    it('without a passphrase and without a TTY: exit 2 and nothing written', async () => {
      const elsewhere = join(work, 'no-pass-ca')
      const r = await cli(['ca', 'init', '--ca-dir', elsewhere, '--json'], {env: NO_PASSPHRASE})
      const error = expectJsonError(r, 2, 'E_SECRET_REQUIRED')
      expect(error.hint).toMatch(/IOTCTL_CA_PASSPHRASE|--passphrase-file/)
      expect(await listDir(elsewhere)).toEqual([])
    })

    it('a passphrase shorter than 8 characters is refused (exit 4)', async () => {
      const elsewhere = join(work, 'short-pass-ca')
      expectJsonError(await cli(['ca', 'init', '--ca-dir', elsewhere, '--json'], {env: {IOTCTL_CA_PASSPHRASE: 'short'}}), 4, 'E_PASSPHRASE')
      expect(await listDir(elsewhere)).toEqual([])
    })
  })

  describe('certs issue', () => {
    let dev1: IssueResult
    let dev1Dir: string

    beforeAll(async () => {
      dev1Dir = join(work, 'dev-1')
      dev1 = await issueJson(['dev-1', '--out', dev1Dir])
    })

    it('-o json returns the record and the PEMs, and --out writes device.key (0600), device.crt, chain.pem', async () => {
      expect(dev1.record).toMatchObject({device_id: 'dev-1', subject_name: 'dev-1', kind: 'device', issuer: 'device-ca', status: 'active'})
      expect(dev1.certificate).toMatch(/^-----BEGIN CERTIFICATE-----\n/)
      expect(dev1.private_key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
      expect(dev1.chain).toBe((await readFile(deviceCa(), 'utf8')) + (await readFile(root(), 'utf8')))
      expect(dev1.files.sort()).toEqual(['chain.pem', 'device.crt', 'device.key'].map((f) => join(dev1Dir, f)).sort())
      expect(await readFile(join(dev1Dir, 'device.crt'), 'utf8')).toBe(dev1.certificate)
      expect(await readFile(join(dev1Dir, 'device.key'), 'utf8')).toBe(dev1.private_key)
      expect(await fileMode(join(dev1Dir, 'device.key'))).toBe(0o600)
      expect((await opensslVerify({root: root(), untrusted: deviceCa(), leaf: join(dev1Dir, 'device.crt')})).ok).toBe(true)
      expect(dev1.record.fingerprint_sha256).toBe(await opensslFingerprint(join(dev1Dir, 'device.crt')))
    })

    it('the default lifetime is 365 days; --days 10 gives 10', async () => {
      const {notBefore, notAfter} = await opensslDates(join(dev1Dir, 'device.crt'))
      expect((notAfter.getTime() - notBefore.getTime() - HOUR_MS) / DAY_MS).toBeCloseTo(365, 4)
      const short = await issueJson(['dev-10', '--days', '10'])
      expect(short.files).toEqual([])
      const path = await savePem(work, 'dev-10.crt', short.certificate)
      const dates = await opensslDates(path)
      expect((dates.notAfter.getTime() - dates.notBefore.getTime() - HOUR_MS) / DAY_MS).toBeCloseTo(10, 4)
    })

    it('table output shows the record; files go to --out, reported on stderr', async () => {
      const out = join(work, 'dev-1-table')
      const r = await cli(['certs', 'issue', 'dev-1', '--out', out])
      expect(r.code, describeRun(r)).toBe(0)
      const [head, row] = r.stdout.trimEnd().split('\n')
      expect(head!.trim().split(/\s+/)).toEqual(['SERIAL', 'SUBJECT', 'KIND', 'STATUS', 'NOT_AFTER', 'REASON'])
      expect(row).toMatch(/^[0-9a-f]{32}\s+dev-1\s+device\s+active\s+\S+Z$/)
      expect(r.stderr).toContain(join(out, 'device.key'))
      expect((await readdir(out)).sort()).toEqual(['chain.pem', 'device.crt', 'device.key'])
    })

    it('--operator NAME: a service identity from the service intermediate (operator.key/.crt)', async () => {
      const out = join(work, 'operator')
      const op = await issueJson(['--operator', 'ci-bot', '--out', out])
      expect(op.record).toMatchObject({kind: 'operator', issuer: 'service-ca', device_id: null, subject_name: 'ci-bot'})
      expect((await readdir(out)).sort()).toEqual(['chain.pem', 'operator.crt', 'operator.key'])
      const leaf = join(out, 'operator.crt')
      expect((await openssl(['x509', '-noout', '-issuer', '-in', leaf])).trim()).toBe('issuer=CN = iotctl Service CA, O = iotctl')
      expect((await opensslVerify({root: root(), untrusted: join(caDir, 'service-ca.crt'), leaf})).ok).toBe(true)
      expect((await opensslVerify({root: root(), untrusted: deviceCa(), leaf})).ok).toBe(false)
    })

    it('neither a device id nor --operator is a usage error (exit 2)', async () => {
      expectJsonError(await cli(['certs', 'issue', '--json']), 2, 'E_USAGE')
    })

    it('signs a CSR given as a file (PEM) or on stdin (--csr -); no key is returned', async () => {
      const pem = await opensslCsr(work, 'dev-csr')
      const fromFile = await issueJson(['dev-csr', '--csr', pem.csrPath])
      expect(fromFile.private_key).toBeUndefined()
      const crt = await savePem(work, 'dev-csr.crt', fromFile.certificate)
      expect(await openssl(['x509', '-noout', '-pubkey', '-in', crt])).toBe(await openssl(['pkey', '-in', pem.keyPath, '-pubout']))
      const stdin = await opensslCsr(work, 'dev-stdin')
      const r = await cli(['certs', 'issue', 'dev-stdin', '--csr', '-', '-o', 'json'], {input: stdin.csrPem})
      const viaStdin = expectOk<IssueResult>(r)
      expect(viaStdin.record.subject_name).toBe('dev-stdin')
    })

    it('signs a DER CSR file (--csr accepts PEM or DER)', async () => {
      const pem = await opensslCsr(work, 'dev-der')
      const derPath = join(work, 'dev-der.der')
      await openssl(['req', '-in', pem.csrPath, '-outform', 'DER', '-out', derPath])
      const issued = expectOk<IssueResult>(await cli(['certs', 'issue', 'dev-der', '--csr', derPath, '-o', 'json']))
      expect(issued.record.subject_name).toBe('dev-der')
    })

    // RSA 1024 and key reuse are exit 4 as well: see test/integration/pki-openssl.test.ts (same error path).
    it('bad CSRs are exit 4 and record nothing: tampered signature, CN ≠ device id', async () => {
      const good = await opensslCsr(work, 'dev-k1')
      const tampered = await savePem(work, 'tampered.csr', tamperCsrSignature(good.csrPem).pem)
      const wrongCn = await opensslCsr(work, 'someone-else', {name: 'cn-mismatch'})
      const [sig, cn] = await runAll([
        [['certs', 'issue', 'dev-k1', '--csr', tampered, '--json']],
        [['certs', 'issue', 'dev-bad', '--csr', wrongCn.csrPath, '--json']],
      ])
      expectJsonError(sig!, 4, 'E_CSR_SIGNATURE')
      expectJsonError(cn!, 4, 'E_CSR_SUBJECT')
      expect(await rowsOf('dev-k1')).toEqual([])
      expect(await rowsOf('dev-bad')).toEqual([])
    })

    it('unknown device → 3; reserved names → 4 at devices register and at certs issue', async () => {
      const [unknown, ...reserved] = await runAll([
        [['certs', 'issue', 'nobody-here', '--json']],
        [['devices', 'register', 'svc-x', '--type', 'thermostat', '--json']],
        [['certs', 'issue', 'admin', '--json']],
      ])
      expectJsonError(unknown!, 3, 'E_DEVICE_NOT_FOUND')
      for (const r of reserved) expectJsonError(r, 4, 'E_RESERVED_NAME')
      expect((await db.pool.query("SELECT device_id FROM devices WHERE device_id IN ('svc-x', 'admin')")).rows).toEqual([])
    })
  })

  describe('passphrases', () => {
    it('a wrong IOTCTL_CA_PASSPHRASE is exit 3 "CA key cannot be decrypted": no certificate row, no files', async () => {
      const out = join(work, 'wrong-pass')
      const r = await cli(['certs', 'issue', 'dev-pw', '--out', out, '--json'], {env: {IOTCTL_CA_PASSPHRASE: WRONG_PASSPHRASE}})
      const error = expectJsonError(r, 3, 'E_CA_KEY_DECRYPT')
      expect(error.message).toMatch(/CA key cannot be decrypted/i)
      expect(r.stderr).toMatch(/^Error: .*key cannot be decrypted/)
      expect(r.stderr).not.toContain(WRONG_PASSPHRASE)
      expect(await rowsOf('dev-pw')).toEqual([])
      expect(await listDir(out)).toEqual([])
    })

    it('--passphrase-file is used (and wins over IOTCTL_CA_PASSPHRASE); a wrong or missing file is exit 3', async () => {
      const good = join(work, 'pass.txt')
      await writeFile(good, `${PASSPHRASE}\n`, {mode: 0o600})
      const issued = expectOk<IssueResult>(await cli(['certs', 'issue', 'dev-pf', '--passphrase-file', good, '-o', 'json'], {env: {IOTCTL_CA_PASSPHRASE: WRONG_PASSPHRASE}}))
      expect(issued.record.device_id).toBe('dev-pf')
      const wrong = join(work, 'wrong-pass.txt')
      await writeFile(wrong, WRONG_PASSPHRASE)
      // A wrong file is exit 3 even when IOTCTL_CA_PASSPHRASE is right: the file wins.
      const [viaFile, absentRun] = await runAll([
        [['certs', 'issue', 'dev-pf', '--passphrase-file', wrong, '--json'], {env: {IOTCTL_CA_PASSPHRASE: PASSPHRASE}}],
        [['certs', 'issue', 'dev-pf', '--passphrase-file', join(work, 'absent.txt'), '--json']],
      ])
      expectJsonError(viaFile!, 3, 'E_CA_KEY_DECRYPT')
      expectJsonError(absentRun!, 3, 'E_PASSPHRASE_FILE')
      expect(await rowsOf('dev-pf')).toHaveLength(1)
    })

    it('no passphrase and no TTY: exit 2 for certs issue too', async () => {
      expectJsonError(await cli(['certs', 'issue', 'dev-pw', '--json'], {env: NO_PASSPHRASE}), 2, 'E_SECRET_REQUIRED')
      expect(await rowsOf('dev-pw')).toEqual([])
    })
  })

  describe('list, revoke, crl, rotate, deprovision', () => {
    let rev: IssueResult
    let revPath: string

    beforeAll(async () => {
      rev = await issueJson(['dev-rev'])
      revPath = await savePem(work, 'dev-rev.crt', rev.certificate)
      await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ['dev-gone'], days: 365}) // setup, not the subject
    })

    it('certs list --device and --expiring-within 30d', async () => {
      const dev1 = await list(['--device', 'dev-1'])
      expect(dev1.length).toBeGreaterThanOrEqual(2)
      expect(dev1.every((c) => c.device_id === 'dev-1')).toBe(true)
      const soon = await list(['--expiring-within', '30d'])
      expect(soon.map((c) => c.device_id)).toEqual(['dev-10'])
    })

    it('certs revoke SERIAL --reason keyCompromise; --device ID; exit codes for bad calls', async () => {
      const revoked = expectOk<CertRecord[]>(await cli(['certs', 'revoke', rev.record.serial, '--reason', 'keyCompromise', '-o', 'json']))
      expect(revoked).toHaveLength(1)
      expect(revoked[0]).toMatchObject({serial: rev.record.serial, status: 'revoked', revocation_reason: 'keyCompromise'})
      const byDevice = expectOk<CertRecord[]>(await cli(['certs', 'revoke', '--device', 'dev-10', '--reason', 'superseded', '-o', 'json']))
      expect(byDevice.map((c) => [c.device_id, c.status, c.revocation_reason])).toEqual([['dev-10', 'revoked', 'superseded']])
      const [none, unknown] = await runAll([[['certs', 'revoke', '--json']], [['certs', 'revoke', 'ab'.repeat(16), '--json']]])
      expectJsonError(none!, 2, 'E_USAGE')
      expectJsonError(unknown!, 3, 'E_CERT_NOT_FOUND')
      expect(await rowsOf('dev-rev')).toEqual([{serial: rev.record.serial, status: 'revoked', revocation_reason: 'keyCompromise'}])
    })

    it('certs crl: three CRLs, numbers increase per run, nextUpdate +7 days, the revoked serial listed with its reason', async () => {
      const first = expectOk<Array<{ca: string; number: number; path: string; this_update: string; next_update: string}>>(await cli(['certs', 'crl', '-o', 'json']))
      expect(first.map((c) => c.ca)).toEqual(['root', 'device-ca', 'service-ca'])
      expect(first.every((c) => c.path.startsWith(join(caDir, 'crl')))).toBe(true)
      const out = join(work, 'crl-out')
      const second = expectOk<typeof first>(await cli(['certs', 'crl', '--out', out, '-o', 'json']))
      expect((await readdir(out)).sort()).toEqual(['crl-chain.pem', 'device-ca.crl.pem', 'root.crl.pem', 'service-ca.crl.pem'])
      for (const [i, c] of second.entries()) {
        const crl = await opensslCrl(c.path)
        expect(crl.number).toBe(BigInt(first[i]!.number) + 1n)
        expect(crl.nextUpdate.getTime() - crl.lastUpdate.getTime()).toBe(7 * DAY_MS)
      }
      const entries = crlEntries((await opensslCrl(join(out, 'device-ca.crl.pem'))).text)
      expect(entries.get(rev.record.serial)).toBe('Key Compromise')
      const check = await opensslVerify({root: root(), untrusted: deviceCa(), leaf: revPath, crlFile: join(out, 'crl-chain.pem')})
      expect(check.ok).toBe(false)
      expect(check.stdout + check.stderr).toMatch(/certificate revoked/)
      const good = await opensslVerify({root: root(), untrusted: deviceCa(), leaf: join(work, 'dev-1', 'device.crt'), crlFile: join(out, 'crl-chain.pem')})
      expect(good.ok, good.stderr).toBe(true)
    })

    it('certs rotate: a new certificate while the old one stays active (superseding it)', async () => {
      const [old] = await issueDeviceCertificates(db, {caDir, passphrase: PASSPHRASE, deviceIds: ['dev-rot'], days: 365})
      const out = join(work, 'dev-rot')
      const rotated = expectOk<IssueResult & {superseding: string[]}>(await cli(['certs', 'rotate', 'dev-rot', '--grace', '1h', '--out', out, '-o', 'json']))
      expect(rotated.superseding).toEqual([old!.record.serial])
      expect(rotated.record).toMatchObject({device_id: 'dev-rot', status: 'active'})
      expect((await opensslVerify({root: root(), untrusted: deviceCa(), leaf: join(out, 'device.crt')})).ok).toBe(true)
      expect(await fileMode(join(out, 'device.key'))).toBe(0o600)
      const {rows} = await db.pool.query('SELECT status, replaced_by FROM certificates WHERE serial = $1', [old!.record.serial])
      expect(rows).toEqual([{status: 'active', replaced_by: rotated.record.serial}])
    })

    it("devices deprovision revokes the device's certificates (cessationOfOperation); it then gets none (exit 3)", async () => {
      expectOk(await cli(['devices', 'deprovision', 'dev-gone', '--yes', '--json']))
      expect((await rowsOf('dev-gone')).map((r) => [r.status, r.revocation_reason])).toEqual([['revoked', 'cessationOfOperation']])
      expectJsonError(await cli(['certs', 'issue', 'dev-gone', '--json']), 3, 'E_DEVICE_DEPROVISIONED')
    })
  })

  describe('devices import --issue-certs', () => {
    it('issues a certificate per device into DIR/<id>/', async () => {
      const csv = join(work, 'fleet.csv')
      await writeFile(csv, 'device_id,device_type,labels\nimp-1,sensor,site=berlin\nimp-2,sensor,site=paris\nimp-3,gateway,\n')
      const out = join(work, 'imported')
      const r = await cli(['devices', 'import', csv, '--issue-certs', '--out', out, '--days', '30', '-o', 'json'])
      expect(expectOk<{inserted: number}>(r).inserted).toBe(3)
      expect((await readdir(out)).sort()).toEqual(['imp-1', 'imp-2', 'imp-3'])
      for (const id of ['imp-1', 'imp-2', 'imp-3']) {
        const dir = join(out, id)
        expect((await readdir(dir)).sort()).toEqual(['chain.pem', 'device.crt', 'device.key'])
        expect(await fileMode(join(dir, 'device.key'))).toBe(0o600)
        expect((await opensslVerify({root: root(), untrusted: join(dir, 'chain.pem'), leaf: join(dir, 'device.crt')})).ok).toBe(true)
        expect((await openssl(['x509', '-noout', '-subject', '-in', join(dir, 'device.crt')])).trim()).toBe(`subject=CN = ${id}`)
        expect((await rowsOf(id)).map((c) => c.status)).toEqual(['active'])
      }
    })

    it('a wrong passphrase imports nothing and writes nothing (exit 3); --issue-certs needs --out (exit 2)', async () => {
      const csv = join(work, 'fleet-2.csv')
      await writeFile(csv, 'device_id,device_type\nimp-9,sensor\nimp-10,sensor\n')
      const out = join(work, 'imported-2')
      const r = await cli(['devices', 'import', csv, '--issue-certs', '--out', out, '--json'], {env: {IOTCTL_CA_PASSPHRASE: WRONG_PASSPHRASE}})
      expectJsonError(r, 3, 'E_CA_KEY_DECRYPT', {atStart: false})
      expect(await listDir(out)).toEqual([])
      expectJsonError(await cli(['devices', 'import', csv, '--issue-certs', '--json']), 2, 'E_USAGE')
      expect((await db.pool.query("SELECT device_id FROM devices WHERE device_id IN ('imp-9', 'imp-10')")).rows).toEqual([])
      expect(await rowsOf('imp-9')).toEqual([])
    })
  })

  describe('ca init --force (last: it replaces the CA)', () => {
    it('replaces the hierarchy (here with --key-type ec-p384 --san), keeping the old one aside', async () => {
      const before = await opensslFingerprint(root())
      const infos = expectOk<Array<{role: string; key: string; sha256: string}>>(
        await cli(['ca', 'init', '--force', '--key-type', 'ec-p384', '--san', 'broker.example.com', '-o', 'json']))
      expect(infos.every((i) => i.key === 'ec secp384r1')).toBe(true)
      expect(infos[0]!.sha256).toBe(await opensslFingerprint(root()))
      expect(infos[0]!.sha256).not.toBe(before)
      const aside = (await readdir(home)).filter((n) => n.startsWith('ca.old-'))
      expect(aside).toHaveLength(1)
      expect(await opensslFingerprint(join(home, aside[0]!, 'root.crt'))).toBe(before)
      const san = await openssl(['x509', '-noout', '-ext', 'subjectAltName', '-in', join(caDir, 'server.crt')])
      expect(san).toContain('DNS:broker.example.com')
      expect((await stat(join(caDir, 'root.key'))).mode & 0o777).toBe(0o600)
    })
  })
})
