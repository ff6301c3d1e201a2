import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseSelector} from '../../src/lib/core/selector.js'
import {deviceSelectionSql, importDevices, matchesSelector, parseImport, type SelectableDevice} from '../../src/lib/registry/index.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'

// Groups select devices that exist only in a manifest with matchesSelector, and devices in the
// database with SQL: both must give the same answer for every selector.
const FLEET: Array<SelectableDevice & {device_id: string}> = [
  {device_id: 'm-1', device_type: 'thermostat', firmware_version: '2.4.0', status: 'active', labels: {site: 'berlin', tier: 'prod'}},
  {device_id: 'm-2', device_type: 'thermostat', firmware_version: '2.5.0-rc.1', status: 'offline', labels: {site: 'berlin', tier: 'test'}},
  {device_id: 'm-3', device_type: 'gateway', firmware_version: null, status: 'active', labels: {site: 'paris', legacy: 'true'}},
  {device_id: 'm-4', device_type: 'gateway', firmware_version: '1.0.0', status: 'active', labels: {}},
]
const SELECTORS = ['', 'site=berlin', 'site!=berlin', 'tier in (prod,test)', 'tier notin (prod)', '!legacy', 'legacy', 'type=gateway',
  'status!=offline', 'firmware<2.5.0', 'firmware!=2.4.0', 'firmware=^2.4', 'firmware in (1.x,>=2.5.0-rc.0)', 'type in (gateway),site=paris', 'labels.site=paris']

describe('matchesSelector agrees with the selector SQL', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
    const text = FLEET.map((d) => JSON.stringify({...d, status: d.status})).join('\n')
    await importDevices(db, await parseImport(text, 'jsonl'), 'fail')
  })
  afterAll(async () => db.drop())

  it.each(SELECTORS)('selector %j', async (selector) => {
    const params: unknown[] = []
    const where = deviceSelectionSql({selector}, params)
    const {rows} = await db.pool.query<{device_id: string}>(`SELECT device_id FROM devices WHERE ${where} ORDER BY device_id`, params)
    const inMemory = FLEET.filter((d) => matchesSelector(parseSelector(selector), d)).map((d) => d.device_id)
    expect(inMemory).toEqual(rows.map((r) => r.device_id))
  })
})
