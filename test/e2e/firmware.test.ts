import {execFile} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {readFile, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {CliResult} from '../helpers/cli.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, type Cli} from '../helpers/e2e-expect.js'

const PASSPHRASE = 'firmware-e2e-passphrase'
const run = promisify(execFile)

/** No stack trace on stderr without --debug. */
const noTrace = (r: CliResult) => expect(r.stderr, describeRun(r)).not.toMatch(/\n\s+at /)

/**
 * `keys init`, `firmware upload | list | verify` through the built CLI against a real PostgreSQL:
 * exit codes from DESIGN §4, JSON envelopes, the key file at rest, and a database left unchanged
 * by every refused upload.
 */
describe('iotctl keys and firmware', {timeout: 60_000}, () => {
  let db: TestDatabase
  let cli: Cli
  let home: string
  let keysDir: string
  const images = new Map<string, string>()

  const image = async (name: string, size = 50_000): Promise<string> => {
    const file = join(home, name)
    await writeFile(file, randomBytes(size))
    images.set(name, file)
    return file
  }
  const listed = async () => expectOk<Array<Record<string, unknown>>>(await cli(['firmware', 'list', '-o', 'json']))
  const upload = (file: string, version: string, type = 'thermostat', extra: string[] = [], env: Record<string, string> = {}) =>
    cli(['firmware', 'upload', file, '--version', version, '--device-type', type, ...extra, '-o', 'json'], {env})

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli, home} = await boundCli(db.url, {IOTCTL_CA_PASSPHRASE: PASSPHRASE}))
    keysDir = join(home, 'keys')
  })
  afterAll(async () => {
    await db?.drop()
    if (home) await rm(home, {recursive: true, force: true})
  })

  it('keys init (ecdsa-p256) → 0, key id and public key; the private key is 0600 and encrypted with the passphrase', async () => {
    const info = expectOk(await cli(['keys', 'init', '-o', 'json']))
    expect(info).toMatchObject({algorithm: 'ecdsa-p256', public_key_file: join(keysDir, 'firmware-signing.pub')})
    expect(info.public_key_pem).toMatch(/^-----BEGIN PUBLIC KEY-----/)
    // PROTOCOL.md: the key id is the first 16 hex digits of SHA-256 over the DER SubjectPublicKeyInfo.
    const der = Buffer.from(info.public_key_pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64')
    expect(info.key_id).toBe(createHash('sha256').update(der).digest('hex').slice(0, 16))
    const keyFile = join(keysDir, 'firmware-signing.key')
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    const pem = await readFile(keyFile, 'utf8')
    expect(pem).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/)
    await expect(run('openssl', ['pkey', '-in', keyFile, '-passin', 'pass:WRONG-passphrase', '-noout'])).rejects.toThrow()
    const ok = await run('openssl', ['pkey', '-in', keyFile, '-passin', `pass:${PASSPHRASE}`, '-pubout'])
    expect(ok.stdout).toBe(info.public_key_pem)
  })

  it('keys init again → 5 E_KEYS_EXIST and the key is unchanged; --force replaces it', async () => {
    const before = await readFile(join(keysDir, 'firmware-signing.pub'), 'utf8')
    const r = await cli(['keys', 'init', '-o', 'json'])
    const err = expectJsonError(r, 5, 'E_KEYS_EXIST')
    expect(err.hint).toMatch(/--force/)
    expectPlainError(await cli(['keys', 'init']), 5)
    expect(await readFile(join(keysDir, 'firmware-signing.pub'), 'utf8')).toBe(before)
    // --force in a scratch directory (the main key signs the uploads below).
    const scratch = join(home, 'scratch-keys')
    const first = expectOk(await cli(['keys', 'init', '--keys-dir', scratch, '-o', 'json']))
    const second = expectOk(await cli(['keys', 'init', '--keys-dir', scratch, '--force', '-o', 'json']))
    expect(second.key_id).not.toBe(first.key_id)
  })

  it('keys init --algorithm ed25519 → an encrypted Ed25519 key, 0600', async () => {
    const dir = join(home, 'ed-keys')
    const info = expectOk(await cli(['keys', 'init', '--algorithm', 'ed25519', '--keys-dir', dir, '-o', 'json']))
    expect(info.algorithm).toBe('ed25519')
    expect(info.key_id).toMatch(/^[0-9a-f]{16}$/)
    const keyFile = join(dir, 'firmware-signing.key')
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    await expect(run('openssl', ['pkey', '-in', keyFile, '-passin', 'pass:WRONG-passphrase', '-noout'])).rejects.toThrow()
    const text = (await run('openssl', ['pkey', '-in', keyFile, '-passin', `pass:${PASSPHRASE}`, '-text', '-noout'])).stdout
    expect(text).toMatch(/ED25519/i)
    expectJsonError(await cli(['keys', 'init', '--algorithm', 'ed25519', '--keys-dir', dir, '-o', 'json']), 5, 'E_KEYS_EXIST')
    // An image signed with the Ed25519 key uploads and verifies with it.
    const file = await image('ed-1.0.0.bin', 4096)
    const record = expectOk(await upload(file, '1.0.0', 'edgebox', ['--keys-dir', dir]))
    expect(record.key_id).toBe(info.key_id)
    expect(expectOk(await cli(['firmware', 'verify', file, '--keys-dir', dir, '-o', 'json'])).signature).toBe('valid')
    // …and does not verify with the ECDSA key of the main directory: the signature check is real.
    const wrongKey = await cli(['firmware', 'verify', file, '-o', 'json'])
    expectJsonError(wrongKey, 4, 'E_SIGNATURE_INVALID')
  })

  it('firmware upload → 0 with the recorded manifest fields', async () => {
    const file = await image('thermo-2.4.0.bin', 70_000)
    const r = await upload(file, '2.4.0', 'thermostat', ['--notes', 'first'])
    const record = expectOk(r)
    const bytes = await readFile(file)
    expect(record).toMatchObject({device_type: 'thermostat', version: '2.4.0', version_code: 1, min_version: null, size: 70_000,
      sha256: createHash('sha256').update(bytes).digest('hex'), notes: 'first'})
    expect(record.key_id).toMatch(/^[0-9a-f]{16}$/)
    expect(typeof record.firmware_id).toBe('number')
    expect(Number.isNaN(Date.parse(record.created_at))).toBe(false)
    // Stored content-addressed under the artifact directory.
    const stored = await readFile(join(home, 'artifacts', record.artifact))
    expect(stored.equals(bytes)).toBe(true)
    noTrace(r)

    const next = expectOk(await upload(await image('thermo-2.5.0.bin'), '2.5.0', 'thermostat', ['--min-version', '2.0.0']))
    expect(next).toMatchObject({version: '2.5.0', version_code: 2, min_version: '2.0.0'})
  })

  it('refused uploads leave the database as it was: same version 5, lower version 4, bad semver 4, missing file 3, wrong passphrase 3', async () => {
    const before = await listed()
    expect(before.map((f) => `${f.device_type}@${f.version}`).sort()).toEqual(['edgebox@1.0.0', 'thermostat@2.4.0', 'thermostat@2.5.0'])
    const file = await image('thermo-x.bin')
    const cases: Array<[CliResult, number, string, RegExp]> = [
      [await upload(file, '2.5.0'), 5, 'E_FIRMWARE_EXISTS', /thermostat@2\.5\.0 is already uploaded/],
      [await upload(file, '2.4.5'), 4, 'E_FIRMWARE_NOT_NEWER', /not newer than 2\.5\.0/],
      [await upload(file, '2.5'), 4, 'E_VERSION', /"2\.5" is not a semantic version/],
      [await upload(file, 'v2.6.0'), 4, 'E_VERSION', /not a semantic version/],
      [await upload(file, '2.6.0', 'thermostat', ['--min-version', 'soon']), 4, 'E_VERSION', /--min-version/],
      [await upload(join(home, 'no-such-file.bin'), '2.6.0'), 3, 'E_FILE_NOT_FOUND', /no-such-file\.bin/],
      [await upload(file, '2.6.0', 'thermostat', [], {IOTCTL_CA_PASSPHRASE: 'not-the-passphrase'}), 3, 'E_SIGNING_KEY_DECRYPT', /wrong passphrase/],
    ]
    for (const [r, exit, code, message] of cases) {
      const err = expectJsonError(r, exit, code)
      expect(err.message, describeRun(r)).toMatch(message)
      expect(err.hint, describeRun(r)).toBeTruthy()
      expect(await listed()).toEqual(before)
    }
    // The same without -o json: nothing on stdout, Error:/Next: on stderr, no stack trace.
    expectPlainError(await cli(['firmware', 'upload', file, '--version', '2.5.0', '--device-type', 'thermostat']), 5)
    expect(await listed()).toEqual(before)
    // --debug adds the code and the stack trace (the contrast that makes the checks above mean something).
    const debug = await cli(['firmware', 'upload', join(home, 'no-such-file.bin'), '--version', '2.6.0', '--device-type', 'thermostat', '--debug'])
    expect(debug.code, describeRun(debug)).toBe(3)
    expect(debug.stderr).toMatch(/^code: E_FILE_NOT_FOUND$/m)
    expect(debug.stderr).toMatch(/\n\s+at /)
  })

  it('--allow-downgrade accepts a lower version → 0, with the next version code', async () => {
    const r = expectOk(await upload(images.get('thermo-x.bin')!, '2.4.5', 'thermostat', ['--allow-downgrade']))
    expect(r).toMatchObject({version: '2.4.5', version_code: 3})
  })

  it('firmware list → every upload; --device-type filters; the table has the columns', async () => {
    const all = await listed()
    expect(all.map((f) => `${f.device_type}@${f.version}#${f.version_code}`).sort()).toEqual(
      ['edgebox@1.0.0#1', 'thermostat@2.4.0#1', 'thermostat@2.4.5#3', 'thermostat@2.5.0#2'])
    const thermo = expectOk<Array<{version: string}>>(await cli(['firmware', 'list', '--device-type', 'thermostat', '-o', 'json']))
    expect(thermo.map((f) => f.version)).toEqual(['2.4.0', '2.5.0', '2.4.5']) // upload order
    const table = await cli(['firmware', 'list'])
    expect(table.code, describeRun(table)).toBe(0)
    expect(table.stdout).toMatch(/^TYPE\s+VERSION\s+CODE\s+SIZE\s+SHA256\s+KEY\s+CREATED\n/)
    expect(table.stdout).toMatch(/^thermostat\s+2\.5\.0\s+2\s+50000\s/m)
    const names = await cli(['firmware', 'list', '-o', 'name'])
    expect(names.stdout.trim().split('\n').sort()).toEqual(['firmware/edgebox@1.0.0', 'firmware/thermostat@2.4.0', 'firmware/thermostat@2.4.5', 'firmware/thermostat@2.5.0'])
  })

  it('firmware verify: the uploaded file → 0; one flipped byte → 3 unknown hash, and with --firmware T@V → 4 naming the mismatch', async () => {
    const file = images.get('thermo-2.5.0.bin')!
    const ok = expectOk(await cli(['firmware', 'verify', file, '-o', 'json']))
    expect(ok).toMatchObject({file, size: 50_000, signature: 'valid', firmware: {device_type: 'thermostat', version: '2.5.0', version_code: 2}})
    const human = await cli(['firmware', 'verify', file])
    expect(human.code, describeRun(human)).toBe(0)
    expect(human.stdout).toMatch(/thermostat@2\.5\.0/)

    const bytes = await readFile(file)
    bytes[1234] = bytes[1234]! ^ 0x01
    const tampered = join(home, 'tampered.bin')
    await writeFile(tampered, bytes)
    const unknown = expectJsonError(await cli(['firmware', 'verify', tampered, '-o', 'json']), 3, 'E_FIRMWARE_UNKNOWN')
    expect(unknown.message).toContain(createHash('sha256').update(bytes).digest('hex'))
    expect(unknown.hint).toMatch(/--firmware/)
    const r = await cli(['firmware', 'verify', tampered, '--firmware', 'thermostat@2.5.0', '-o', 'json'])
    const mismatch = expectJsonError(r, 4, 'E_ARTIFACT_MISMATCH')
    expect(mismatch.message).toMatch(/does not match thermostat@2\.5\.0/)
    expect(mismatch.message).toContain(createHash('sha256').update(bytes).digest('hex'))
    expectPlainError(await cli(['firmware', 'verify', tampered]), 3)
    expectPlainError(await cli(['firmware', 'verify', tampered, '--firmware', 'thermostat@2.5.0']), 4)

    // A truncated copy is a size mismatch; a wrong --firmware reference is 4 or 3.
    const truncated = join(home, 'truncated.bin')
    await writeFile(truncated, (await readFile(file)).subarray(0, 1000))
    expectJsonError(await cli(['firmware', 'verify', truncated, '--firmware', 'thermostat@2.5.0', '-o', 'json']), 4, 'E_ARTIFACT_MISMATCH')
    expectJsonError(await cli(['firmware', 'verify', file, '--firmware', 'thermostat', '-o', 'json']), 4, 'E_FIRMWARE_REF')
    expectJsonError(await cli(['firmware', 'verify', file, '--firmware', 'thermostat@9.9.9', '-o', 'json']), 3, 'E_FIRMWARE_NOT_FOUND')
    expectJsonError(await cli(['firmware', 'verify', join(home, 'nope.bin'), '-o', 'json']), 3, 'E_FILE_NOT_FOUND')
  })
})
