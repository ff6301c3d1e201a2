import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseAllDocuments} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {CliOptions} from '../helpers/cli.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, type Cli} from '../helpers/e2e-expect.js'
import {databaseChecksum, device} from '../helpers/manifests.js'

const PASSPHRASE = 'manifests-ota-e2e-passphrase'

const DESIRED = (mode: string) => `apiVersion: iotctl/v1\nkind: DesiredState\nmetadata: {name: comfort}\nspec: {device: ota-1, desired: {mode: ${mode}}}\n`
const FIRMWARE = 'apiVersion: iotctl/v1\nkind: Firmware\nmetadata:\n  name: thermo-130\nspec:\n  deviceType: thermostat\n  version: 1.3.0\n' +
  '  file: images/thermostat-1.3.0.bin\n  notes: e2e image\n'
const ROLLOUT = 'apiVersion: iotctl/v1\nkind: Rollout\nmetadata:\n  name: ota-130\nspec:\n  firmware: thermo-130\n  selector: site=lab\n' +
  '  stages: [50, 100]\n  soak: 10m\n  maxFailureRate: 20%\n  minDecided: 1\n  start: true\n'

/**
 * Firmware and Rollout manifests through the built CLI (bin/run.js → dist/) against a real PostgreSQL,
 * with a CA and a firmware signing key made by `ca init` and `keys init` in an isolated IOTCTL_HOME.
 */
describe('iotctl apply / diff / get / schema with Firmware and Rollout (spawned CLI)', {timeout: 60_000}, () => {
  let db: TestDatabase
  let cli: Cli
  let home: string
  let dir: string
  let image: Buffer
  /** Every command that reads the database gets its URL with --database-url (nothing in the environment). */
  const run = (args: string[], options: CliOptions = {}) => cli([...args, '--database-url', db.url], options)

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli, home} = await boundCli(undefined, {IOTCTL_CA_PASSPHRASE: PASSPHRASE}))
    dir = await mkdtemp(join(tmpdir(), 'iotctl-ota-manifests-'))
    image = randomBytes(20_000)
    await mkdir(join(dir, 'images'))
    await writeFile(join(dir, 'images', 'thermostat-1.3.0.bin'), image)
    await writeFile(join(dir, 'devices.yaml'), ['ota-1', 'ota-2', 'ota-3'].map((id) => device(id, {site: 'lab'}, 'type: thermostat\nfirmware: 1.0.0')).join('---\n'))
    await writeFile(join(dir, 'desired.yaml'), DESIRED('eco'))
    await writeFile(join(dir, 'ota.yaml'), `${FIRMWARE}---\n${ROLLOUT}`)
  })
  afterAll(async () => {
    await db?.drop()
    for (const d of [home, dir]) if (d) await rm(d, {recursive: true, force: true})
  })

  it('ca init and keys init prepare the CA and the firmware signing key', async () => {
    const ca = await cli(['ca', 'init'])
    expect(ca.code, describeRun(ca)).toBe(0)
    expect(expectOk(await cli(['keys', 'init', '-o', 'json']))).toMatchObject({algorithm: 'ecdsa-p256', public_key_file: join(home, 'keys', 'firmware-signing.pub')})
  })

  it('apply -f DIR prints kubectl-style lines in kind order; the image is signed and stored; a second apply says unchanged', async () => {
    const first = await run(['apply', '-f', dir])
    expect(first.code, describeRun(first)).toBe(0)
    expect(first.stdout).toBe(['device/ota-1 created', 'device/ota-2 created', 'device/ota-3 created', 'firmware/thermo-130 created',
      'desiredstate/comfort created', 'rollout/ota-130 created', ''].join('\n'))
    expect(first.stderr).toMatch(/^Plan \(apply\): 6 to create, 0 to configure, 0 to delete, 0 unchanged\n/)
    expect(first.stderr).toContain('  + firmware/thermo-130\n')
    expect(first.stderr).toContain('  + rollout/ota-130\n')
    const hash = createHash('sha256').update(image).digest('hex')
    expect(await readFile(join(home, 'artifacts', 'sha256', hash))).toEqual(image)
    const {rows} = await db.pool.query(`SELECT r.state, r.target_count, f.sha256 FROM rollouts r JOIN firmware f USING (firmware_id) WHERE r.name = 'ota-130'`)
    expect(rows).toEqual([{state: 'running', target_count: 3, sha256: hash}])

    const before = await databaseChecksum(db)
    const second = await run(['apply', '-f', dir])
    expect(second.code, describeRun(second)).toBe(0)
    expect(second.stdout).toBe(['device/ota-1', 'device/ota-2', 'device/ota-3', 'firmware/thermo-130', 'desiredstate/comfort', 'rollout/ota-130', '']
      .join(' unchanged\n'))
    expect(second.stderr).toBe('Plan (apply): 0 to create, 0 to configure, 0 to delete, 6 unchanged\n')
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('diff -f DIR exits 0 after the apply, and 1 with a unified diff after a DesiredState is edited in the files', async () => {
    const same = await run(['diff', '-f', dir])
    expect(same.code, describeRun(same)).toBe(0)
    expect(same.stdout).toBe('')
    await writeFile(join(dir, 'desired.yaml'), DESIRED('boost'))
    try {
      const changed = await run(['diff', '-f', dir])
      expect(changed.code, describeRun(changed)).toBe(1)
      expect(changed.stdout).toMatch(/^--- live\/desiredstate\/comfort\n\+\+\+ files\/desiredstate\/comfort\n/m)
      expect(changed.stdout).toMatch(/^-\s+mode: eco\n\+\s+mode: boost$/m)
      expect(changed.stdout).not.toMatch(/firmware\/|rollout\//)
    } finally {
      await writeFile(join(dir, 'desired.yaml'), DESIRED('eco'))
    }
  })

  it('get rollouts -o yaml | apply -f - is unchanged', async () => {
    const yaml = await run(['get', 'rollouts', '-o', 'yaml'])
    expect(yaml.code, describeRun(yaml)).toBe(0)
    expect(parseAllDocuments(yaml.stdout).map((d) => d.toJS())).toEqual([{apiVersion: 'iotctl/v1', kind: 'Rollout', metadata: {name: 'ota-130'},
      spec: {firmware: 'thermo-130', selector: 'site=lab', stages: [50, 100], soak: '10m', maxFailureRate: '20%', minDecided: 1, minCoverage: '90%',
        rate: 'unlimited', stepTimeout: '30m', rollback: false, start: true}}])
    const before = await databaseChecksum(db)
    const back = await run(['apply', '-f', '-'], {input: yaml.stdout})
    expect(back.code, describeRun(back)).toBe(0)
    expect(back.stdout).toBe('rollout/ota-130 unchanged\n')
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('get firmware -o yaml shows the sha256 and no file, and re-applies unchanged', async () => {
    const yaml = await run(['get', 'firmware', '-o', 'yaml'])
    expect(yaml.code, describeRun(yaml)).toBe(0)
    const hash = createHash('sha256').update(image).digest('hex')
    expect(yaml.stdout).toBe(`apiVersion: iotctl/v1\nkind: Firmware\nmetadata:\n  name: thermo-130\nspec:\n  deviceType: thermostat\n  version: 1.3.0\n` +
      `  sha256: ${hash}\n  notes: e2e image\n`)
    expect(yaml.stdout).not.toMatch(/file:/)
    const back = await run(['apply', '-f', '-'], {input: yaml.stdout})
    expect(back.stdout, describeRun(back)).toBe('firmware/thermo-130 unchanged\n')
  })

  it('an image edited in place after the upload is exit 5 E_FIRMWARE_IMMUTABLE, the database unchanged', async () => {
    const file = join(dir, 'images', 'thermostat-1.3.0.bin')
    const before = await databaseChecksum(db)
    await writeFile(file, randomBytes(20_000))
    try {
      expectJsonError(await run(['apply', '-f', dir, '--json']), 5, 'E_FIRMWARE_IMMUTABLE', {atStart: false})
      expect(await databaseChecksum(db)).toEqual(before)
    } finally {
      await writeFile(file, image)
    }
  })

  it('iotctl schema contains the Firmware and Rollout kinds with their fields', async () => {
    const r = await cli(['schema'])
    expect(r.code, describeRun(r)).toBe(0)
    const schema = JSON.parse(r.stdout) as {anyOf: Array<{properties: {kind: {const: string}; spec: {properties: Record<string, unknown>}}}>}
    const kinds = new Map(schema.anyOf.map((k) => [k.properties.kind.const, k.properties.spec.properties]))
    expect([...kinds.keys()]).toEqual(expect.arrayContaining(['Device', 'DeviceGroup', 'DesiredState', 'Firmware', 'Rollout']))
    expect(Object.keys(kinds.get('Firmware')!)).toEqual(expect.arrayContaining(['deviceType', 'version', 'file', 'sha256', 'minVersion', 'notes']))
    expect(Object.keys(kinds.get('Rollout')!)).toEqual(expect.arrayContaining(['firmware', 'selector', 'canarySelector', 'stages', 'soak',
      'maxFailureRate', 'minDecided', 'minCoverage', 'rate', 'stepTimeout', 'health', 'rollback', 'start']))
  })
})
