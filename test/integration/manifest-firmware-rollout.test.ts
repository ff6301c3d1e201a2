import {createHash, randomBytes} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileArtifactStore, initSigningKeys, loadSigningKey} from '../../src/lib/firmware/index.js'
import {applyManifests, deleteManifests, diffManifests, exportObjects, toYamlStream, type ApplyResult} from '../../src/lib/manifest/index.js'
import type {FirmwareTools} from '../../src/lib/manifest/types.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {applyOptions, databaseChecksum, device} from '../helpers/manifests.js'

const PASSPHRASE = 'manifest-firmware-passphrase'
const results = (r: ApplyResult) => Object.fromEntries(r.changes.map((c) => [c.ref, c.result]))
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')
const noStdin = () => Promise.reject(new Error('no stdin in this test'))

const firmwareDoc = (name: string, spec: string, metadata = '') =>
  `apiVersion: iotctl/v1\nkind: Firmware\nmetadata:\n  name: ${name}\n${metadata}spec:\n${spec.split('\n').filter(Boolean).map((s) => `  ${s}`).join('\n')}\n`
const rolloutDoc = (name: string, spec: string, metadata = '') =>
  `apiVersion: iotctl/v1\nkind: Rollout\nmetadata:\n  name: ${name}\n${metadata}spec:\n${spec.split('\n').filter(Boolean).map((s) => `  ${s}`).join('\n')}\n`

/** The running rollout of the first test: every field given, in the forms `rollout create` takes. */
const BERLIN = ['firmware: fw-110', 'selector: site=berlin', 'stages: [50, 100]', 'soak: 1.5h', 'maxFailureRate: 10%', 'minDecided: 2',
  'rate: 5/s', 'stepTimeout: 60s', "health: 'temperature<80,status=online'", 'rollback: true', 'start: true']
const berlin = (replace: Record<string, string> = {}) =>
  rolloutDoc('ro-berlin', BERLIN.map((line) => replace[line.split(':')[0]!] ?? line).filter((l) => l !== '').join('\n'))

/**
 * Firmware and Rollout objects through the manifest library against a real PostgreSQL: creation
 * (signed firmware row, content-addressed artifact, a started rollout with its targets), idempotence,
 * the export round trip, immutability (exit 5), bad input (exit 4, nothing written), a rollout
 * without targets (exit 3, all or nothing) and deletes that would lose a record (exit 5).
 */
describe('Firmware and Rollout manifests', () => {
  let db: TestDatabase
  let root: string
  let dir: string
  let storeDir: string
  let keyId: string
  let image: Buffer
  let firmware: () => Promise<FirmwareTools>

  const write = async (name: string, text: string | Buffer) => {
    const path = join(dir, name)
    await mkdir(dirname(path), {recursive: true})
    await writeFile(path, text)
    return path
  }
  const apply = (files: string[]) => applyManifests(db, applyOptions(files, {firmware}))
  const remove = (files: string[]) => deleteManifests(db, {files, recursive: false, readStdin: noStdin, dryRun: false})
  const rollout = async (name: string) =>
    (await db.pool.query('SELECT * FROM rollouts WHERE name = $1', [name])).rows[0] as Record<string, unknown> | undefined
  const targets = async (name: string) =>
    (await db.pool.query<{device_id: string}>('SELECT device_id FROM rollout_targets WHERE rollout = $1 ORDER BY device_id', [name])).rows.map((r) => r.device_id)

  /** Exit 4 naming file:line:column and the field path, and not one row written. */
  const expectInvalid = async (file: string, path: string, message?: RegExp) => {
    const before = await databaseChecksum(db)
    const error = await apply([file]).then(() => undefined, (e: unknown) => e) as {exitCode?: number; code?: string; message: string; data?: {issues: Array<Record<string, unknown>>}}
    expect(error, `${file}: expected exit 4 at ${path}`).toMatchObject({exitCode: 4, code: 'E_MANIFEST_INVALID'})
    const issue = error.data!.issues.find((i) => i.path === path)
    expect(issue, JSON.stringify(error.data!.issues)).toMatchObject({file, line: expect.any(Number), column: expect.any(Number)})
    if (message) expect(issue!.message).toMatch(message)
    expect(error.message).toContain(`${file}:${issue!.line}:${issue!.column}: ${path}:`)
    expect(await databaseChecksum(db)).toEqual(before)
  }

  beforeAll(async () => {
    db = await freshDatabase()
    root = await mkdtemp(join(tmpdir(), 'iotctl-fw-manifests-'))
    dir = join(root, 'manifests')
    storeDir = join(root, 'artifacts')
    keyId = (await initSigningKeys({dir: join(root, 'keys'), algorithm: 'ecdsa-p256', passphrase: PASSPHRASE})).key_id
    firmware = async () => {
      const signing = await loadSigningKey(join(root, 'keys'), PASSPHRASE)
      return {signing: {key: signing.key, keyId: signing.keyId}, store: new FileArtifactStore(storeDir)}
    }
    image = randomBytes(4096)
  })
  afterAll(async () => {
    await db?.drop()
    if (root) await rm(root, {recursive: true, force: true})
  })

  it('creates the devices, the firmware (signed, stored content-addressed) and a started rollout with its targets', async () => {
    await write('fw/thermostat-1.1.0.bin', image)
    await write('devices.yaml', [
      device('t-b1', {site: 'berlin'}, 'type: thermostat\nfirmware: 1.0.0'), device('t-b2', {site: 'berlin'}, 'type: thermostat\nfirmware: 1.0.0'),
      device('t-b3', {site: 'berlin'}, 'type: thermostat\nfirmware: 1.0.0'), device('t-p1', {site: 'paris'}, 'type: thermostat\nfirmware: 1.0.0'),
      device('lamp-b1', {site: 'berlin'}, 'type: lamp'),
    ].join('---\n'))
    await write('rollout.yaml', [firmwareDoc('fw-110', 'deviceType: thermostat\nversion: 1.1.0\nfile: fw/thermostat-1.1.0.bin\nnotes: better scheduling'),
      berlin()].join('---\n'))
    const r = await apply([dir])
    expect(results(r)).toEqual({'device/t-b1': 'created', 'device/t-b2': 'created', 'device/t-b3': 'created', 'device/t-p1': 'created', 'device/lamp-b1': 'created',
      'firmware/fw-110': 'created', 'rollout/ro-berlin': 'created'})
    const hash = sha256(image)
    const {rows: fw} = await db.pool.query('SELECT name, device_type, version, sha256, size::int, artifact, key_id, notes FROM firmware')
    expect(fw).toEqual([{name: 'fw-110', device_type: 'thermostat', version: '1.1.0', sha256: hash, size: 4096, artifact: `sha256/${hash}`, key_id: keyId,
      notes: 'better scheduling'}])
    expect(await readFile(join(storeDir, 'sha256', hash))).toEqual(image)
    expect(await rollout('ro-berlin')).toMatchObject({selector: 'site=berlin', canary_selector: null, stages: [50, 100], soak_ms: '5400000',
      max_failure_rate: 0.1, min_decided: 2, min_coverage: 0.9, rate_per_minute: 300, step_timeout_ms: '60000', health: 'temperature<80,status=online',
      rollback: true, state: 'running', target_count: 3})
    // Within the firmware's device type: the Berlin lamp is not a target.
    expect(await targets('ro-berlin')).toEqual(['t-b1', 't-b2', 't-b3'])
  })

  it('applying the same files again: every line unchanged, not one row written, diff empty', async () => {
    const before = await databaseChecksum(db)
    const r = await apply([dir])
    expect(new Set(Object.values(results(r)))).toEqual(new Set(['unchanged']))
    expect(r.summary).toEqual({created: 0, configured: 0, unchanged: 7, deleted: 0})
    expect(await databaseChecksum(db)).toEqual(before)
    expect(await diffManifests(db, {files: [dir], recursive: false, readStdin: noStdin, prune: false})).toMatchObject({changed: false, diff: ''})
  })

  it('get exports firmware (sha256, no file) and rollouts (normalised settings) that re-apply unchanged', async () => {
    const fw = await exportObjects(db, 'firmware')
    expect(fw).toEqual([{apiVersion: 'iotctl/v1', kind: 'Firmware', metadata: {name: 'fw-110'},
      spec: {deviceType: 'thermostat', version: '1.1.0', sha256: sha256(image), notes: 'better scheduling'}}])
    const ro = await exportObjects(db, 'rollouts')
    expect(ro).toEqual([{apiVersion: 'iotctl/v1', kind: 'Rollout', metadata: {name: 'ro-berlin'}, spec: {firmware: 'fw-110', selector: 'site=berlin',
      stages: [50, 100], soak: '90m', maxFailureRate: '10%', minDecided: 2, minCoverage: '90%', rate: '300/min', stepTimeout: '1m',
      health: 'temperature<80,status=online', rollback: true, start: true}}])
    const stream = await toYamlStream([...fw, ...ro])
    const before = await databaseChecksum(db)
    const r = await applyManifests(db, {...applyOptions(['-'], {firmware}), readStdin: async () => Buffer.from(stream)})
    expect(results(r)).toEqual({'firmware/fw-110': 'unchanged', 'rollout/ro-berlin': 'unchanged'})
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('a pending rollout (start: false) starts when start becomes true: configured, running with targets; then unchanged', async () => {
    const pending = (start: boolean) => rolloutDoc('ro-paris', `firmware: fw-110\nselector: site=paris\nstages: [100]\nstart: ${start}`)
    const path = await write('extra/paris.yaml', pending(false))
    expect(results(await apply([path]))).toEqual({'rollout/ro-paris': 'created'})
    expect(await rollout('ro-paris')).toMatchObject({state: 'pending', target_count: 0, soak_ms: '3600000', max_failure_rate: 0.05, rate_per_minute: null})
    expect(await targets('ro-paris')).toEqual([])
    expect(results(await apply([path]))).toEqual({'rollout/ro-paris': 'unchanged'})
    await write('extra/paris.yaml', pending(true))
    expect(results(await apply([path]))).toEqual({'rollout/ro-paris': 'configured'})
    expect(await rollout('ro-paris')).toMatchObject({state: 'running', target_count: 1})
    expect(await targets('ro-paris')).toEqual(['t-p1'])
    const before = await databaseChecksum(db)
    expect(results(await apply([path]))).toEqual({'rollout/ro-paris': 'unchanged'})
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('changing any other field of a created rollout is exit 5 E_ROLLOUT_IMMUTABLE, nothing written', async () => {
    const changes: Array<Record<string, string>> = [{soak: 'soak: 1h'}, {stages: 'stages: [25, 100]'}, {selector: 'selector: site=paris'},
      {maxFailureRate: 'maxFailureRate: 20%'}, {minDecided: 'minDecided: 3'}, {rate: 'rate: unlimited'}, {stepTimeout: 'stepTimeout: 2m'},
      {health: ''}, {rollback: 'rollback: false'}, {start: 'start: false'}, {selector: 'canarySelector: site=berlin\nselector: site=berlin'}]
    const before = await databaseChecksum(db)
    for (const change of changes) {
      const path = await write('extra/changed.yaml', berlin(change))
      await expect(apply([path]), JSON.stringify(change)).rejects.toMatchObject({exitCode: 5, code: 'E_ROLLOUT_IMMUTABLE'})
    }
    // A pending rollout: only start may change; start plus another field is refused too.
    const idle = await write('extra/idle.yaml', rolloutDoc('ro-idle', 'firmware: fw-110\nselector: site=paris\nstart: false'))
    expect(results(await apply([idle]))).toEqual({'rollout/ro-idle': 'created'})
    const afterIdle = await databaseChecksum(db)
    await write('extra/idle.yaml', rolloutDoc('ro-idle', 'firmware: fw-110\nselector: site=paris\nsoak: 2h\nstart: true'))
    await expect(apply([idle])).rejects.toMatchObject({exitCode: 5, code: 'E_ROLLOUT_IMMUTABLE'})
    expect(await databaseChecksum(db)).toEqual(afterIdle)
    await remove([idle])
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('a firmware whose notes or image (another file) differ from the record is exit 5 E_FIRMWARE_IMMUTABLE, nothing written', async () => {
    const before = await databaseChecksum(db)
    const notes = await write('extra/notes.yaml', firmwareDoc('fw-110', 'deviceType: thermostat\nversion: 1.1.0\nfile: ../fw/thermostat-1.1.0.bin\nnotes: other'))
    await expect(apply([notes])).rejects.toMatchObject({exitCode: 5, code: 'E_FIRMWARE_IMMUTABLE'})
    await write('fw/other.bin', randomBytes(4096))
    const other = await write('extra/other.yaml', firmwareDoc('fw-110', 'deviceType: thermostat\nversion: 1.1.0\nfile: ../fw/other.bin\nnotes: better scheduling'))
    await expect(apply([other])).rejects.toMatchObject({exitCode: 5, code: 'E_FIRMWARE_IMMUTABLE'})
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('the firmware file rewritten in place with other bytes is exit 5 E_FIRMWARE_IMMUTABLE, nothing written', async () => {
    const before = await databaseChecksum(db)
    // The first test's apply read this file in this process; the new bytes must still be seen.
    await write('fw/thermostat-1.1.0.bin', randomBytes(4096))
    try {
      const outcome = await apply([join(dir, 'rollout.yaml')]).then(results, (e: unknown) => e)
      expect(outcome).toMatchObject({exitCode: 5, code: 'E_FIRMWARE_IMMUTABLE'})
      expect(await databaseChecksum(db)).toEqual(before)
    } finally {
      await write('fw/thermostat-1.1.0.bin', image)
    }
  })

  it('a rollout naming a missing firmware is exit 4 at file:line:column of spec.firmware', async () => {
    const path = await write('extra/missing.yaml', rolloutDoc('ro-missing', 'firmware: nope\nselector: site=berlin'))
    const before = await databaseChecksum(db)
    const error = await apply([path]).then(() => undefined, (e: unknown) => e)
    expect(error).toMatchObject({exitCode: 4, code: 'E_MANIFEST_INVALID', data: {issues: [{file: path, line: 6, column: 13, path: 'spec.firmware',
      message: expect.stringMatching(/firmware\/nope does not exist/)}]}})
    expect((error as Error).message).toContain(`${path}:6:13: spec.firmware:`)
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('bad rollout and firmware fields are exit 4 with the field path; nothing written', async () => {
    const ro = (spec: string, metadata = '') => rolloutDoc('ro-bad', `firmware: fw-110\nselector: site=berlin\n${spec}`, metadata)
    const fw = (spec: string, metadata = '') => firmwareDoc('fw-bad', `deviceType: thermostat\nversion: 9.0.0\n${spec}`, metadata)
    const cases: Array<[string, string, string, RegExp?]> = [
      ['stages.yaml', ro('stages: [10, 5]'), 'spec.stages'],
      ['soak.yaml', ro('soak: 5x'), 'spec.soak', /not a duration/],
      ['failure.yaml', ro('maxFailureRate: 150%'), 'spec.maxFailureRate', /percentage/],
      ['rate.yaml', ro('rate: fast'), 'spec.rate', /not a rate/],
      ['selector.yaml', rolloutDoc('ro-bad', 'firmware: fw-110\nselector: "site in (berlin"'), 'spec.selector'],
      ['ro-labels.yaml', ro('', '  labels: {site: berlin}\n'), 'metadata.labels'],
      ['fw-labels.yaml', fw('file: ../fw/thermostat-1.1.0.bin', '  labels: {site: berlin}\n'), 'metadata.labels'],
      ['fw-neither.yaml', fw(''), 'spec.file'],
      ['fw-unreadable.yaml', fw('file: ../fw/no-such-image.bin'), 'spec.file', /cannot read/],
      ['fw-sha.yaml', fw(`file: ../fw/thermostat-1.1.0.bin\nsha256: ${'b'.repeat(64)}`), 'spec.sha256', new RegExp(sha256(image))],
    ]
    for (const [name, text, path, message] of cases) await expectInvalid(await write(`bad/${name}`, text), path, message)
  })

  it('a rollout whose selector matches no device is exit 3; the firmware of the same apply is not created either', async () => {
    await write('fw/thermostat-1.2.0.bin', randomBytes(1024))
    const path = await write('extra/tokyo.yaml', [firmwareDoc('fw-120', 'deviceType: thermostat\nversion: 1.2.0\nfile: ../fw/thermostat-1.2.0.bin'),
      rolloutDoc('ro-tokyo', 'firmware: fw-120\nselector: site=tokyo\nstart: true')].join('---\n'))
    const before = await databaseChecksum(db)
    await expect(apply([path])).rejects.toMatchObject({exitCode: 3, code: 'E_NO_TARGETS'})
    expect(await databaseChecksum(db)).toEqual(before)
    expect((await db.pool.query("SELECT count(*)::int AS n FROM firmware WHERE name = 'fw-120'")).rows[0].n).toBe(0)
  })

  it('delete: a running rollout is exit 5 E_ROLLOUT_ACTIVE; a pending one goes; a firmware in use is exit 5 E_FIRMWARE_IN_USE', async () => {
    const running = await write('del/berlin.yaml', berlin())
    const before = await databaseChecksum(db)
    await expect(remove([running])).rejects.toMatchObject({exitCode: 5, code: 'E_ROLLOUT_ACTIVE'})
    expect(await databaseChecksum(db)).toEqual(before)

    const later = await write('del/later.yaml', rolloutDoc('ro-later', 'firmware: fw-110\nselector: site=paris\nstart: false'))
    expect(results(await apply([later]))).toEqual({'rollout/ro-later': 'created'})
    expect(results(await remove([later]))).toEqual({'rollout/ro-later': 'deleted'})
    expect(await rollout('ro-later')).toBeUndefined()
    expect(await databaseChecksum(db)).toEqual(before)

    const fw = await write('del/fw.yaml', firmwareDoc('fw-110', `deviceType: thermostat\nversion: 1.1.0\nsha256: ${sha256(image)}\nnotes: better scheduling`))
    await expect(remove([fw])).rejects.toMatchObject({exitCode: 5, code: 'E_FIRMWARE_IN_USE'})
    expect(await databaseChecksum(db)).toEqual(before)
  })


  // Probes last: when the product accepts these, the rows they write must not disturb the tests above.
  it('a step timeout `rollout create` refuses (under 1s) is refused in a manifest too: exit 4', async () => {
    await expectInvalid(await write('bad/timeout.yaml', rolloutDoc('ro-timeout', 'firmware: fw-110\nselector: site=berlin\nstepTimeout: 500ms')), 'spec.stepTimeout')
  })

  it('stages the database cannot store (fractions) are exit 4 at spec.stages, not a crash', async () => {
    await expectInvalid(await write('bad/fraction.yaml', rolloutDoc('ro-fraction', 'firmware: fw-110\nselector: site=berlin\nstages: [2.5, 100]')), 'spec.stages[0]')
  })

  it('a firmware given by sha256 only that was never uploaded is exit 4 at spec.file (the image is needed to create it)', async () => {
    await expectInvalid(await write('bad/sha-only.yaml', firmwareDoc('fw-new', `deviceType: thermostat\nversion: 9.0.0\nsha256: ${'a'.repeat(64)}`)), 'spec.file')
  })
})
