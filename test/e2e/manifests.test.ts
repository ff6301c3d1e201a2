import {mkdtemp, readdir, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseAllDocuments} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {initCa} from '../../src/lib/pki/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, type Cli} from '../helpers/e2e-expect.js'
import {databaseChecksum, device, manifestDir} from '../helpers/manifests.js'
import {PASSPHRASE} from '../helpers/pki-fixtures.js'

const EXAMPLES = fileURLToPath(new URL('../../manifests/examples/', import.meta.url))

describe('iotctl apply / diff / get / delete / schema (spawned CLI, real PostgreSQL)', () => {
  let db: TestDatabase
  let cli: Cli
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
  })
  afterAll(async () => db.drop())

  it('apply prints kubectl-style lines on stdout and the plan on stderr; a second apply says unchanged', async () => {
    const first = await cli(['apply', '-f', EXAMPLES])
    expect(first.code, describeRun(first)).toBe(0)
    expect(first.stdout).toBe(['device/thermo-berlin-1 created', 'device/thermo-berlin-2 created', 'device/thermo-paris-1 created',
      'devicegroup/berlin created', 'devicegroup/prod created', 'desiredstate/berlin-comfort created', 'desiredstate/meeting-room created', ''].join('\n'))
    expect(first.stderr).toMatch(/^Plan \(apply\): 7 to create, 0 to configure, 0 to delete, 0 unchanged\n {2}\+ device\/thermo-berlin-1\n/)
    const second = await cli(['apply', '-f', EXAMPLES])
    expect(second.code, describeRun(second)).toBe(0)
    expect(second.stdout.trimEnd().split('\n').every((l) => l.endsWith(' unchanged'))).toBe(true)
    expect(second.stderr).toBe('Plan (apply): 0 to create, 0 to configure, 0 to delete, 7 unchanged\n')
  })

  it('diff exits 0 without changes and 1 with a unified diff; -o json carries the same', async () => {
    const same = await cli(['diff', '-f', EXAMPLES])
    expect(same.code, describeRun(same)).toBe(0)
    expect(same.stdout).toBe('')
    const {write} = await manifestDir()
    const path = await write('d.yaml', device('thermo-paris-1', {site: 'paris', tier: 'prod'}, 'type: thermostat\nfirmware: 2.4.0'))
    const changed = await cli(['diff', '-f', path])
    expect(changed.code, describeRun(changed)).toBe(1)
    expect(changed.stdout).toMatch(/^--- live\/device\/thermo-paris-1\n\+\+\+ files\/device\/thermo-paris-1\n@@ .* @@\n/m)
    expect(changed.stdout).toMatch(/^-\s+firmware: 2\.3\.1\n\+\s+firmware: 2\.4\.0$/m)
    const json = await cli(['diff', '-f', path, '-o', 'json'])
    expect(json.code).toBe(1)
    expect(json.json().result).toMatchObject({changed: true, summary: {configured: 1}})
  })

  it('apply --dry-run -o json shows the plan and writes nothing', async () => {
    const before = await databaseChecksum(db)
    const {write} = await manifestDir()
    const path = await write('new.yaml', device('dry-1', {site: 'x'}, 'type: t'))
    const r = expectOk(await cli(['apply', '-f', path, '--dry-run', '-o', 'json']))
    expect(r).toMatchObject({dry_run: true, changes: [{ref: 'device/dry-1', action: 'create', result: 'created', source: `${path}:1:1`}]})
    const table = await cli(['apply', '-f', path, '--dry-run'])
    expect(table.stdout).toBe('device/dry-1 created (dry run)\n')
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('get -o yaml exports manifests that apply -f - takes back unchanged', async () => {
    const yaml = await cli(['get', 'desiredstates', '-o', 'yaml'])
    expect(yaml.code, describeRun(yaml)).toBe(0)
    expect(parseAllDocuments(yaml.stdout).map((d) => d.toJS().metadata.name)).toEqual(['berlin-comfort', 'meeting-room'])
    const back = await cli(['apply', '-f', '-', '-o', 'json'], {input: yaml.stdout})
    expect(expectOk(back).summary).toEqual({created: 0, configured: 0, unchanged: 2, deleted: 0})
    const one = await cli(['get', 'device', 'thermo-berlin-1', '-o', 'yaml'])
    expect(one.stdout).toBe('apiVersion: iotctl/v1\nkind: Device\nmetadata:\n  name: thermo-berlin-1\n  labels:\n    site: berlin\n    tier: prod\n' +
      'spec:\n  type: thermostat\n  owner: 42\n  firmware: 2.4.0\n  metadata:\n    room: "3.14"\n')
    expect((await cli(['get', 'group', '-o', 'name'])).stdout).toBe('devicegroup/berlin\ndevicegroup/prod\n')
    expectPlainError(await cli(['get', 'device', 'nope']), 3)
  })

  it('bad input: exit 4, file:line:column in the JSON envelope, the database unchanged', async () => {
    const before = await databaseChecksum(db)
    const {write} = await manifestDir()
    const path = await write('bad.yaml', device('bad-1', {site: 'x'}, 'type: t\nowner: "x"'))
    const error = expectJsonError(await cli(['apply', '-f', path, '--json']), 4, 'E_MANIFEST_INVALID')
    expect(error.data!.issues).toEqual([{file: path, line: 8, column: 10, path: 'spec.owner', message: expect.stringMatching(/expected number/)}])
    expect(error.message).toContain(`${path}:8:10: spec.owner:`)
    expectPlainError(await cli(['apply', '-f', path]), 4)
    // Validation comes before the database: bad input is exit 4 even when no database can be reached.
    for (const verb of ['apply', 'diff', 'delete']) expectPlainError(await cli([verb, '-f', path, '--database-url', 'postgres://u:p@127.0.0.1:1/none']), 4)
    expectPlainError(await cli(['apply', '-f', path, '--prune']), 2)
    expectPlainError(await cli(['apply']), 2)
    // The limits have flags, and crossing them is exit 4 (DESIGN.md §4).
    const ok = await write('ok.yaml', device('lim-1', {site: 'x'}, 'type: t'))
    const size = expectJsonError(await cli(['apply', '-f', ok, '--max-file-size', '64', '--json']), 4, 'E_MANIFEST_INVALID')
    expect(size.message).toMatch(new RegExp(`${ok}:1:1: the file is \\d+ bytes; the limit is 64 bytes`))
    const aliased = await write('alias.yaml', 'apiVersion: iotctl/v1\nkind: Device\nmetadata: {name: lim-2, labels: &l {a: b}}\nspec: {type: t, metadata: *l}\n')
    expectJsonError(await cli(['apply', '-f', aliased, '--max-aliases', '0', '--json']), 4, 'E_MANIFEST_INVALID')
    expect(await databaseChecksum(db)).toEqual(before)
    expectOk(await cli(['apply', '-f', aliased, '--json']))
  })

  it('schema prints a draft-07 JSON Schema for every kind', async () => {
    const r = await cli(['schema'])
    expect(r.code, describeRun(r)).toBe(0)
    const schema = JSON.parse(r.stdout)
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#')
    expect(schema.anyOf.map((k: {properties: {kind: {const: string}}}) => k.properties.kind.const)).toEqual(['Device', 'DeviceGroup', 'Firmware', 'DesiredState', 'Rollout'])
  })

  it('delete -f deletes; again: not found, exit 0', async () => {
    const r = await cli(['delete', '-f', join(EXAMPLES, 'desired-state.yaml')])
    expect(r.code, describeRun(r)).toBe(0)
    expect(r.stdout).toBe('desiredstate/berlin-comfort deleted\ndesiredstate/meeting-room deleted\n')
    const again = await cli(['delete', '-f', join(EXAMPLES, 'desired-state.yaml')])
    expect(again.stdout).toBe('desiredstate/berlin-comfort not found\ndesiredstate/meeting-room not found\n')
  })
})

describe('a crash between commit and the after-commit work converges on re-apply', () => {
  let db: TestDatabase
  let cli: Cli
  let caDir: string
  beforeAll(async () => {
    db = await freshDatabase()
    caDir = await mkdtemp(join(tmpdir(), 'iotctl-ca-'))
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    ;({cli} = await boundCli(db.url, {IOTCTL_CA_PASSPHRASE: PASSPHRASE, IOTCTL_CA_DIR: caDir}))
  })
  afterAll(async () => {
    await db.drop()
    await rm(caDir, {recursive: true, force: true})
  })

  it('killed after the commit: rows committed, key files missing; the next apply issues again and ends unchanged', async () => {
    const {write, dir} = await manifestDir()
    const path = await write('c.yaml', [device('k-1', {site: 'k'}, 'type: t\ncertificate: {issue: true, out: certs}'),
      `apiVersion: iotctl/v1\nkind: DesiredState\nmetadata: {name: k-ds}\nspec: {device: k-1, desired: {mode: eco}}\n`].join('---\n'))
    const crashed = await cli(['apply', '-f', path], {env: {IOTCTL_FAULTS: 'apply.after_commit:crash'}})
    expect(crashed.code, describeRun(crashed)).toBe(null) // SIGKILL: no exit code, no output after the plan
    expect(crashed.stdout).toBe('')
    const {rows} = await db.pool.query("SELECT count(*)::int AS n FROM certificates WHERE device_id = 'k-1' AND status = 'active'")
    expect(rows[0].n).toBe(1)
    await expect(readdir(join(dir, 'certs'))).rejects.toMatchObject({code: 'ENOENT'})
    const retry = await cli(['apply', '-f', path])
    expect(retry.code, describeRun(retry)).toBe(0)
    expect(retry.stdout).toBe('device/k-1 configured\ndesiredstate/k-ds unchanged\n')
    expect(retry.stderr).toMatch(/device\/k-1: certificate [0-9a-f]+ written to /)
    expect(await readdir(join(dir, 'certs', 'k-1'))).toEqual(['chain.pem', 'device.crt', 'device.key'])
    const final = await cli(['apply', '-f', path])
    expect(final.stdout).toBe('device/k-1 unchanged\ndesiredstate/k-ds unchanged\n')
    const {rows: certs} = await db.pool.query("SELECT status FROM certificates WHERE device_id = 'k-1' ORDER BY created_at")
    expect(certs.map((c) => c.status)).toEqual(['revoked', 'active'])
  })
})
