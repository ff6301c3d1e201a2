import semver from 'semver'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {
  deprovisionDevice, getDevice, importDevices, listDevices, parseImport, registerDevice, toDeviceInput, updateDevice,
  type Device,
} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'

const VERSIONS = ['0.9.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0',
  '1.2.3', '1.2.10', '2.0.0-rc.1', '2.0.0', '2.4.0', '2.4.9', '2.5.0-rc.1', '2.5.0', '2.5.1', '3.0.0', '10.0.0']
const SITES = ['berlin', 'paris', 'oslo']
const TYPES = ['thermostat', 'gateway']

async function allIds(db: TestDatabase, options: Parameters<typeof listDevices>[1]): Promise<string[]> {
  const ids: string[] = []
  let after: string | undefined
  do {
    const page = await listDevices(db, {...options, limit: options.limit, after})
    ids.push(...page.items.map((d) => d.device_id))
    after = page.next ?? undefined
  } while (after)
  return ids
}

describe('registry store on real PostgreSQL', () => {
  let db: TestDatabase
  const fleet: Array<{id: string; type: string; site: string; firmware: string | null; tier?: string}> = []

  beforeAll(async () => {
    db = await freshDatabase()
    let n = 0
    for (const firmware of [...VERSIONS, null]) {
      for (const site of SITES) {
        const type = TYPES[n % 2]!
        const id = `dev-${String(n++).padStart(4, '0')}`
        const tier = n % 3 === 0 ? undefined : n % 3 === 1 ? 'prod' : 'test'
        fleet.push({id, type, site, firmware, tier})
        await registerDevice(db, toDeviceInput({device_id: id, device_type: type, firmware_version: firmware,
          labels: tier ? {site, tier} : {site}}))
      }
    }
  })
  afterAll(async () => db.drop())

  it.each([
    '<2.5.0', '<=2.5.0', '^2.4.0', '~1.2', '>=1.0.0 <2.0.0', '1.x || 3.x', '2.5.0-rc.1 - 2.5.0', '>1.0.0-beta', '*', '=1.2.3',
    '>=1.0.0-alpha <1.0.0', '^1.0.0-beta.2',
  ])('firmware range %s selects exactly what semver.satisfies selects', async (range) => {
    const expected = fleet.filter((d) => d.firmware !== null && semver.satisfies(d.firmware, range)).map((d) => d.id)
    expect(await allIds(db, {firmware: range, limit: 7})).toEqual(expected)
    const negated = fleet.filter((d) => d.firmware === null || !semver.satisfies(d.firmware, range)).map((d) => d.id)
    expect(await allIds(db, {selector: `firmware!=${range}`, limit: 1000})).toEqual(negated)
  })

  it.each([
    ['site=berlin', (d: (typeof fleet)[number]) => d.site === 'berlin'],
    ['site!=berlin', (d: (typeof fleet)[number]) => d.site !== 'berlin'],
    ['site in (berlin,oslo),type=gateway', (d: (typeof fleet)[number]) => d.site !== 'paris' && d.type === 'gateway'],
    ['site notin (berlin),tier', (d: (typeof fleet)[number]) => d.site !== 'berlin' && d.tier !== undefined],
    ['!tier', (d: (typeof fleet)[number]) => d.tier === undefined],
    ['tier=prod,type!=thermostat,firmware>=2.0.0', (d: (typeof fleet)[number]) =>
      d.tier === 'prod' && d.type !== 'thermostat' && d.firmware !== null && semver.satisfies(d.firmware, '>=2.0.0')],
  ])('selector %s', async (selector, predicate) => {
    expect(await allIds(db, {selector, limit: 5})).toEqual(fleet.filter(predicate).map((d) => d.id))
  })

  it('pages with a stable cursor: rows inserted behind the cursor do not shift the next page', async () => {
    const first = await listDevices(db, {limit: 10})
    await registerDevice(db, toDeviceInput({device_id: 'dev-0000a', device_type: 'gateway'})) // sorts before the cursor
    const second = await listDevices(db, {limit: 10, after: first.next!})
    expect(second.items[0]!.device_id).toBe('dev-0010')
    await deprovisionDevice(db, 'dev-0000a')
  })

  it('update with a stale expected version conflicts and changes nothing', async () => {
    const before = await getDevice(db, 'dev-0001')
    await expect(updateDevice(db, 'dev-0001', {setLabels: {x: 'y'}, expectedVersion: before.row_version + 5}))
      .rejects.toMatchObject({code: 'E_VERSION_CONFLICT', exitCode: 5})
    expect(await getDevice(db, 'dev-0001')).toEqual(before)
    const after = await updateDevice(db, 'dev-0001', {setLabels: {x: 'y'}, removeLabels: ['tier'], expectedVersion: before.row_version})
    expect(after.labels).toEqual({site: before.labels.site, x: 'y'})
    expect(after.row_version).toBe(before.row_version + 1)
  })

  it('two concurrent updates with the same expected version: exactly one wins', async () => {
    const {row_version} = await getDevice(db, 'dev-0002')
    const results = await Promise.allSettled([1, 2].map((i) =>
      updateDevice(db, 'dev-0002', {setMetadata: {writer: String(i)}, expectedVersion: row_version})))
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    expect(results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason.code)).toEqual(['E_VERSION_CONFLICT'])
  })

  it('import is all or nothing: a conflict in the second batch rolls back the first', async () => {
    const lines = ['device_id,device_type,labels']
    for (let i = 0; i < 6000; i++) lines.push(`imp-${String(i).padStart(5, '0')},sensor,site=lyon;batch=a`)
    lines.push('dev-0003,sensor,site=lyon') // already registered; lands in the second batch of 5000
    const rows = await parseImport(lines.join('\n'), 'csv')
    await expect(importDevices(db, rows, 'fail')).rejects.toMatchObject({code: 'E_IMPORT_EXISTS', exitCode: 5, data: {lines: [6002]}})
    expect((await listDevices(db, {selector: 'site=lyon', limit: 10})).items).toEqual([])
    const skipped = await importDevices(db, rows, 'skip')
    expect(skipped).toEqual({rows: 6001, inserted: 6000, updated: 0, skipped: 1})
    expect((await getDevice(db, 'dev-0003')).device_type).not.toBe('sensor')
  })

  it('import --on-conflict update overwrites live devices but never resurrects deprovisioned ones', async () => {
    await deprovisionDevice(db, 'dev-0004')
    const rows = await parseImport('{"device_id":"dev-0005","device_type":"sensor","labels":{"site":"rome"}}\n{"device_id":"dev-0004","device_type":"sensor"}\n', 'jsonl')
    expect(await importDevices(db, rows, 'update')).toEqual({rows: 2, inserted: 0, updated: 1, skipped: 1})
    const updated: Device = await getDevice(db, 'dev-0005')
    expect(updated).toMatchObject({device_type: 'sensor', labels: {site: 'rome'}, row_version: 2})
    expect(await getDevice(db, 'dev-0004')).toMatchObject({status: 'deprovisioned', device_type: 'thermostat'})
  })
})
