import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {X509Certificate} from 'node:crypto'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {applyManifests, diffManifests} from '../../src/lib/manifest/index.js'
import {initCa} from '../../src/lib/pki/index.js'
import {getDevice} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {applyOptions, databaseChecksum, device, manifestDir} from '../helpers/manifests.js'
import {fileMode, PASSPHRASE} from '../helpers/pki-fixtures.js'

const results = (r: {changes: Array<{ref: string; result: string}>}) => Object.fromEntries(r.changes.map((c) => [c.ref, c.result]))
const group = (name: string, selector: string) => `apiVersion: iotctl/v1\nkind: DeviceGroup\nmetadata: {name: ${name}}\nspec: {selector: "${selector}"}\n`
const desired = (name: string, target: string, values: string) => `apiVersion: iotctl/v1\nkind: DesiredState\nmetadata: {name: ${name}}\nspec:\n  ${target}\n  desired: ${values}\n`

describe('prune with an applyset', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => db.drop())

  it('deletes only what an earlier apply of the same applyset created and the files no longer contain', async () => {
    const {write} = await manifestDir()
    const all = await write('fleet.yaml', [device('p-1', {site: 'x'}, 'type: t'), device('p-2', {site: 'x'}, 'type: t'), group('gx', 'site=x')].join('---\n'))
    const other = await write('other.yaml', device('o-1', {site: 'x'}, 'type: t'))
    await applyManifests(db, applyOptions([all], {applyset: 'fleet'}))
    await applyManifests(db, applyOptions([other])) // not in the applyset: never pruned by it
    const fewer = await write('fewer.yaml', device('p-1', {site: 'x'}, 'type: t'))
    const diff = await diffManifests(db, {files: [fewer], recursive: false, readStdin: () => Promise.reject(new Error('none')), prune: true, applyset: 'fleet'})
    expect(diff.summary).toEqual({created: 0, configured: 0, unchanged: 1, deleted: 2})
    expect(diff.diff).toMatch(/^--- live\/device\/p-2\n\+\+\+ files\/device\/p-2\n/m)
    const r = await applyManifests(db, applyOptions([fewer], {applyset: 'fleet', prune: true}))
    expect(results(r)).toEqual({'device/p-1': 'unchanged', 'device/p-2': 'pruned', 'devicegroup/gx': 'pruned'})
    expect((await getDevice(db, 'p-2')).status).toBe('deprovisioned')
    expect((await getDevice(db, 'o-1')).status).toBe('active')
    const again = await applyManifests(db, applyOptions([fewer], {applyset: 'fleet', prune: true}))
    expect(results(again)).toEqual({'device/p-1': 'unchanged'})
  })

  it('never prunes without --applyset (exit 2), and an applyset name is checked', async () => {
    await expect(applyManifests(db, applyOptions(['x.yaml'], {prune: true}))).rejects.toMatchObject({exitCode: 2, code: 'E_PRUNE_NEEDS_APPLYSET'})
    await expect(applyManifests(db, applyOptions(['x.yaml'], {applyset: 'Bad Name'}))).rejects.toMatchObject({exitCode: 2, code: 'E_APPLYSET'})
  })
})

describe('all or nothing: a failure leaves every table byte-for-byte unchanged', () => {
  let db: TestDatabase
  let write: (name: string, text: string) => Promise<string>
  beforeAll(async () => {
    db = await freshDatabase()
    ;({write} = await manifestDir())
    await applyManifests(db, applyOptions([await write('base.yaml', [device('b-1', {site: 'b'}, 'type: t'), group('gb', 'site=b')].join('---\n'))], {applyset: 'base'}))
    // Outside the applyset, a DesiredState uses the group.
    await applyManifests(db, applyOptions([await write('dx.yaml', desired('dx', 'group: gb', '{mode: eco}'))]))
  })
  afterAll(async () => db.drop())

  it('a failure inside the transaction, after a device was inserted, rolls all of it back (exit 5)', async () => {
    const before = await databaseChecksum(db)
    // Pruning group gb fails (dx uses it) after device b-new was inserted in the same transaction.
    const path = await write('next.yaml', [device('b-1', {site: 'b'}, 'type: t'), device('b-new', {site: 'b'}, 'type: t')].join('---\n'))
    await expect(applyManifests(db, applyOptions([path], {applyset: 'base', prune: true}))).rejects.toMatchObject({exitCode: 5, code: 'E_GROUP_IN_USE'})
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('a shadow limit crossed only when merged with the live document fails inside the transaction (exit 4)', async () => {
    const before = await databaseChecksum(db)
    const big = (key: string) => `{${key}: "${'x'.repeat(5000)}"}`
    await applyManifests(db, applyOptions([await write('big1.yaml', desired('dx', 'group: gb', big('a')))]))
    const mid = await databaseChecksum(db)
    expect(mid).not.toEqual(before)
    const path = await write('big2.yaml', [device('b-2', {site: 'b'}, 'type: t'), desired('dy', 'device: b-1', big('b'))].join('---\n'))
    await expect(applyManifests(db, applyOptions([path]))).rejects.toMatchObject({exitCode: 4, code: 'E_SHADOW_TOO_LARGE'})
    expect(await databaseChecksum(db)).toEqual(mid)
  })

  it.each([
    ['YAML syntax error', 'apiVersion: iotctl/v1\nkind: Device\nmetadata: {name: z-1\n', /:[34]:\d+: YAML syntax error/],
    ['duplicate key', device('z-1', {site: 'b'}, 'type: t\ntype: u'), /:8:3: duplicate key/],
    ['unknown field', device('z-1', {site: 'b'}, 'type: t\ncolor: red'), /:8:3: spec\.color: unknown field "color"/],
    ['wrong type', device('z-1', {site: 'b'}, 'type: t\nowner: [1]'), /:8:10: spec\.owner: .*expected number/],
    ['unknown kind', 'apiVersion: iotctl/v1\nkind: Robot\nmetadata: {name: z-1}\nspec: {}\n', /:2:7: kind: unknown kind "Robot"/],
    ['unknown apiVersion', 'apiVersion: v1\nkind: Device\nmetadata: {name: z-1}\nspec: {type: t}\n', /:1:13: apiVersion: unknown apiVersion "v1"; expected "iotctl\/v1"/],
    ['missing group', desired('z-ds', 'group: nowhere', '{mode: eco}'), /:5:10: spec\.group: devicegroup\/nowhere does not exist; expected a DeviceGroup/],
    ['missing device', desired('z-ds', 'device: ghost', '{mode: eco}'), /:5:11: spec\.device: device\/ghost does not exist/],
    ['bad selector', group('z-g', 'site in (a'), /:4:18: spec\.selector: invalid selector: /],
    ['device and group both', desired('z-ds', 'device: b-1\n  group: gb', '{mode: eco}'), /:6:10: spec\.group: expected exactly one of device or group, not both/],
    ['declared twice', [device('z-1', {site: 'b'}, 'type: t'), device('z-1', {site: 'b'}, 'type: t')].join('---\n'), /:12:9: metadata\.name: device\/z-1 is declared twice \(first at .*:4:9\)/],
    ['alias bomb', `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [${Array(10).fill('*a').join(',')}]\nc: [${Array(10).fill('*b').join(',')}]\n`, /:1:1: too many aliases/],
  ])('%s: exit 4 with file:line:column, and no change', async (_name, text, pattern) => {
    const before = await databaseChecksum(db)
    const path = await write(`bad-${_name.replace(/\W+/g, '-')}.yaml`, [text, device('z-ok', {site: 'b'}, 'type: t')].join('---\n'))
    const error = await applyManifests(db, applyOptions([path])).then(() => undefined, (e: Error & {exitCode: number}) => e)
    expect(error?.exitCode, String(error)).toBe(4)
    expect(error!.message).toMatch(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}${pattern.source}`))
    expect(await databaseChecksum(db)).toEqual(before)
  })
})

describe('certificates issued by a Device manifest', () => {
  let db: TestDatabase
  let caDir: string
  let write: (name: string, text: string) => Promise<string>
  let dir: string
  beforeAll(async () => {
    db = await freshDatabase()
    caDir = await mkdtemp(join(tmpdir(), 'iotctl-ca-'))
    await initCa({dir: caDir, keyType: 'ec-p256', passphrase: PASSPHRASE, sans: [], force: false})
    ;({write, dir} = await manifestDir())
  })
  afterAll(async () => {
    await db.drop()
    await rm(caDir, {recursive: true, force: true})
  })

  it('issues to files only, re-applies unchanged, and issues again when the files are gone', async () => {
    const path = await write('cert.yaml', device('c-1', {site: 'c'}, 'type: t\ncertificate: {issue: true, out: certs, days: 30}'))
    const first = await applyManifests(db, applyOptions([path], {caDir, passphrase: PASSPHRASE}))
    expect(results(first)).toEqual({'device/c-1': 'created'})
    expect(JSON.stringify(first)).not.toMatch(/PRIVATE KEY/)
    expect(first.notes).toEqual([expect.stringMatching(new RegExp(`^device/c-1: certificate [0-9a-f]+ written to ${dir}/certs/c-1 `))])
    expect(await fileMode(join(dir, 'certs/c-1/device.key'))).toBe(0o600)
    const cert = new X509Certificate(await readFile(join(dir, 'certs/c-1/device.crt')))
    expect(cert.subject).toContain('CN=c-1')
    const again = await applyManifests(db, applyOptions([path], {caDir, passphrase: PASSPHRASE}))
    expect(results(again)).toEqual({'device/c-1': 'unchanged'})
    await rm(join(dir, 'certs'), {recursive: true})
    const third = await applyManifests(db, applyOptions([path], {caDir, passphrase: PASSPHRASE}))
    expect(third.changes[0]).toMatchObject({result: 'configured', reasons: [expect.stringMatching(/^certificate: no valid certificate in /)]})
    const {rows} = await db.pool.query("SELECT status, revocation_reason FROM certificates WHERE device_id = 'c-1' ORDER BY created_at")
    expect(rows).toEqual([{status: 'revoked', revocation_reason: 'superseded'}, {status: 'active', revocation_reason: null}])
    expect((await getDevice(db, 'c-1')).row_version).toBe(1) // the device itself was not touched
  })
})
