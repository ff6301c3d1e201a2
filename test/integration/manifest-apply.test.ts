import {readFile} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {applyManifests, deleteManifests, diffManifests, exportObjects, toYamlStream} from '../../src/lib/manifest/index.js'
import {getShadow, SHADOW_CHANNEL} from '../../src/lib/shadow/index.js'
import {listen} from '../../src/lib/db/listen.js'
import {getDevice} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {applyOptions, databaseChecksum, device, manifestDir} from '../helpers/manifests.js'

const EXAMPLES = fileURLToPath(new URL('../../manifests/examples/', import.meta.url))
const results = (r: {changes: Array<{ref: string; result: string}>}) => Object.fromEntries(r.changes.map((c) => [c.ref, c.result]))

describe('apply, diff, get, delete of the example manifests', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => db.drop())

  it('the first apply creates every object in one go, with desired state on the devices', async () => {
    const r = await applyManifests(db, applyOptions([EXAMPLES]))
    expect(results(r)).toEqual({
      'device/thermo-berlin-1': 'created', 'device/thermo-berlin-2': 'created', 'device/thermo-paris-1': 'created',
      'devicegroup/berlin': 'created', 'devicegroup/prod': 'created', 'desiredstate/berlin-comfort': 'created', 'desiredstate/meeting-room': 'created',
    })
    expect(r.summary).toEqual({created: 7, configured: 0, unchanged: 0, deleted: 0})
    expect(await getDevice(db, 'thermo-berlin-1')).toMatchObject({device_type: 'thermostat', owner_user_id: 42, firmware_version: '2.4.0', labels: {site: 'berlin', tier: 'prod'}, metadata: {room: '3.14'}})
    // Group values, the device's own value over them.
    expect((await getShadow(db, 'thermo-berlin-1')).state.desired).toEqual({target_temperature: 22, mode: 'eco', schedule: {night: 18, day: 21}})
    expect((await getShadow(db, 'thermo-berlin-2')).state.desired).toEqual({target_temperature: 21, mode: 'eco', schedule: {night: 18, day: 21}})
    expect((await getShadow(db, 'thermo-paris-1')).state.desired).toEqual({})
  })

  it('applying the same files again changes nothing, and says so: not one row is written', async () => {
    const before = await databaseChecksum(db)
    const r = await applyManifests(db, applyOptions([EXAMPLES]))
    expect(new Set(r.changes.map((c) => c.result))).toEqual(new Set(['unchanged']))
    expect(r.summary).toEqual({created: 0, configured: 0, unchanged: 7, deleted: 0})
    expect(await databaseChecksum(db)).toEqual(before)
    const diff = await diffManifests(db, {files: [EXAMPLES], recursive: false, readStdin: () => Promise.reject(new Error('none')), prune: false})
    expect(diff).toMatchObject({changed: false, diff: ''})
  })

  it('diff shows a changed field as a unified diff; apply configures only that object', async () => {
    const {write} = await manifestDir()
    const text = (await readFile(`${EXAMPLES}/devices.yaml`, 'utf8')).replace('tier: test', 'tier: staging')
    const path = await write('devices.yaml', text)
    const diff = await diffManifests(db, {files: [path], recursive: false, readStdin: () => Promise.reject(new Error('none')), prune: false})
    expect(diff.changed).toBe(true)
    expect(diff.diff).toContain('--- live/device/thermo-berlin-2\n+++ files/device/thermo-berlin-2\n')
    expect(diff.diff).toMatch(/^-\s+tier: test$/m)
    expect(diff.diff).toMatch(/^\+\s+tier: staging$/m)
    expect(diff.summary).toEqual({created: 0, configured: 1, unchanged: 2, deleted: 0})
    const r = await applyManifests(db, applyOptions([path]))
    expect(results(r)['device/thermo-berlin-2']).toBe('configured')
    expect((await getDevice(db, 'thermo-berlin-2')).labels).toEqual({site: 'berlin', tier: 'staging'})
  })

  it('get exports every kind as manifests that re-apply unchanged (round trip through stdin)', async () => {
    const docs = [...await exportObjects(db, 'devices'), ...await exportObjects(db, 'devicegroup'), ...await exportObjects(db, 'DesiredState')]
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Device/thermo-berlin-1', 'Device/thermo-berlin-2', 'Device/thermo-paris-1',
      'DeviceGroup/berlin', 'DeviceGroup/prod', 'DesiredState/berlin-comfort', 'DesiredState/meeting-room'])
    expect(docs.find((d) => d.metadata.name === 'meeting-room')).toEqual({apiVersion: 'iotctl/v1', kind: 'DesiredState', metadata: {name: 'meeting-room'},
      spec: {device: 'thermo-berlin-1', desired: {target_temperature: 22}}})
    const stream = await toYamlStream(docs)
    const before = await databaseChecksum(db)
    const r = await applyManifests(db, {...applyOptions(['-']), readStdin: async () => Buffer.from(stream)})
    expect(r.summary).toEqual({created: 0, configured: 0, unchanged: 7, deleted: 0})
    expect(await databaseChecksum(db)).toEqual(before)
  })

  it('get of one missing object is exit 3; of an unknown kind exit 2', async () => {
    await expect(exportObjects(db, 'device', 'nope')).rejects.toMatchObject({exitCode: 3, code: 'E_OBJECT_NOT_FOUND'})
    await expect(exportObjects(db, 'gadget')).rejects.toMatchObject({exitCode: 2, code: 'E_UNKNOWN_KIND'})
  })

  it('a device whose shadow lost a value is configured again (desired state converges)', async () => {
    await db.pool.query(`UPDATE shadows SET document = jsonb_set(document, '{state,desired,mode}', '"boost"') WHERE device_id = 'thermo-berlin-2'`)
    const r = await applyManifests(db, applyOptions([`${EXAMPLES}/desired-state.yaml`]))
    expect(results(r)).toEqual({'desiredstate/berlin-comfort': 'configured', 'desiredstate/meeting-room': 'unchanged'})
    expect(r.changes[0]!.reasons).toEqual(['shadows: 1 device does not hold these desired values yet'])
    expect((await getShadow(db, 'thermo-berlin-2')).state.desired.mode).toBe('eco')
  })

  it('delete -f removes the desired values it declared; a second delete finds nothing', async () => {
    const path = `${EXAMPLES}/desired-state.yaml`
    const r = await deleteManifests(db, {files: [path], recursive: false, readStdin: () => Promise.reject(new Error('none')), dryRun: false})
    expect(results(r)).toEqual({'desiredstate/berlin-comfort': 'deleted', 'desiredstate/meeting-room': 'deleted'})
    expect((await getShadow(db, 'thermo-berlin-1')).state.desired).toEqual({})
    expect((await exportObjects(db, 'desiredstate'))).toEqual([])
    const again = await deleteManifests(db, {files: [path], recursive: false, readStdin: () => Promise.reject(new Error('none')), dryRun: false})
    expect(results(again)).toEqual({'desiredstate/berlin-comfort': 'not found', 'desiredstate/meeting-room': 'not found'})
  })

  it('delete of devices deprovisions them (kept for audit), and get no longer lists them', async () => {
    const {write} = await manifestDir()
    const path = await write('one.yaml', device('thermo-paris-1', {site: 'paris'}, 'type: thermostat'))
    const r = await deleteManifests(db, {files: [path], recursive: false, readStdin: () => Promise.reject(new Error('none')), dryRun: false})
    expect(results(r)).toEqual({'device/thermo-paris-1': 'deleted'})
    expect((await getDevice(db, 'thermo-paris-1')).status).toBe('deprovisioned')
    expect((await exportObjects(db, 'device')).map((d) => d.metadata.name)).toEqual(['thermo-berlin-1', 'thermo-berlin-2'])
    await expect(applyManifests(db, applyOptions([path]))).rejects.toMatchObject({exitCode: 5, code: 'E_MANIFEST_CONFLICT'})
  })
})

describe('devices hear of desired state only after the commit', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => db.drop())

  it('a committed apply announces the changed deltas (NOTIFY for the shadow service); a rolled-back one announces nothing', async () => {
    const heard: string[] = []
    const listener = await listen(db.url, SHADOW_CHANNEL, (payload) => heard.push(...payload.split(',')))
    try {
      const {write} = await manifestDir()
      const ds = (name: string, device: string, values: string) => `apiVersion: iotctl/v1\nkind: DesiredState\nmetadata: {name: ${name}}\nspec: {device: ${device}, desired: ${values}}\n`
      const ok = await write('ok.yaml', [device('n-1', {site: 'n'}, 'type: t'), device('n-2', {site: 'n'}, 'type: t'), ds('n1', 'n-1', '{mode: eco}')].join('---\n'))
      await applyManifests(db, applyOptions([ok]))
      await expect.poll(() => heard).toEqual(['n-1'])
      // Each value passes the checks alone; inside the transaction the DesiredState rows and n-2's new shadow
      // row are written, then the two 5 KB values merged on n-2 cross the 8 KiB shadow limit: all rolled back.
      const blob = (key: string) => `{${key}: "${'x'.repeat(5000)}"}`
      const bad = await write('bad.yaml', [ds('n2', 'n-1', '{extra: 1}'), ds('n3', 'n-2', blob('a')), ds('n4', 'n-2', blob('b'))].join('---\n'))
      const before = await databaseChecksum(db)
      await expect(applyManifests(db, applyOptions([bad]))).rejects.toMatchObject({exitCode: 4, code: 'E_SHADOW_TOO_LARGE'})
      expect(await databaseChecksum(db)).toEqual(before)
      await applyManifests(db, applyOptions([ok])) // unchanged: nothing to announce either
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(heard).toEqual(['n-1'])
    } finally {
      await listener.close()
    }
  })
})
