import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, expectJsonError, expectOk, expectPlainError, type Cli} from '../helpers/e2e-expect.js'

const HEADER = 'device_id,device_type,owner_user_id,firmware_version,labels,metadata'

describe('devices import', () => {
  let db: TestDatabase
  let cli: Cli
  let dir: string

  const file = async (name: string, lines: string[]) => {
    const path = join(dir, name)
    await writeFile(path, lines.join('\n') + '\n')
    return path
  }
  /** Every stored row: a refused import must leave this exactly as it was. */
  const table = async () => JSON.stringify((await db.pool.query('SELECT * FROM devices ORDER BY device_id')).rows)
  const count = async () => Number((await db.pool.query('SELECT count(*) AS n FROM devices')).rows[0].n)
  const get = async (id: string) => expectOk(await cli(['devices', 'get', id, '--json']))

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    dir = await mkdtemp(join(tmpdir(), 'iotctl-import-'))
  })
  afterAll(async () => {
    await db.drop()
    await rm(dir, {recursive: true, force: true})
  })

  it('imports a CSV file: labels k=v;k=v, metadata k=v or a JSON object', async () => {
    const path = await file('fleet.csv', [
      HEADER,
      'csv-1,thermostat,42,2.4.0,site=berlin;tier=prod,room=3.14',
      'csv-2,thermostat,,2.5.0,site=berlin;tier=test,',
      'csv-3,sensor,7,,site=paris,"{""floor"":3,""room"":""b""}"',
    ])
    expect(expectOk(await cli(['devices', 'import', path, '--json']))).toEqual({rows: 3, inserted: 3, updated: 0, skipped: 0})
    expect(await get('csv-1')).toMatchObject({device_type: 'thermostat', owner_user_id: 42, firmware_version: '2.4.0',
      labels: {site: 'berlin', tier: 'prod'}, metadata: {room: '3.14'}, status: 'active'})
    expect(await get('csv-3')).toMatchObject({owner_user_id: 7, firmware_version: null, metadata: {floor: 3, room: 'b'}})
    const page = expectOk(await cli(['devices', 'list', '--selector', 'site=berlin,tier=prod', '--json']))
    expect(page.items.map((d: {device_id: string}) => d.device_id)).toEqual(['csv-1'])
  })

  it('imports a JSON Lines file, and the table output counts the rows', async () => {
    const path = await file('fleet.jsonl', [
      JSON.stringify({device_id: 'jl-1', device_type: 'meter', owner_user_id: 3, firmware_version: '1.0.0', labels: {site: 'oslo'}, metadata: {pos: {x: 1}}}),
      '',
      JSON.stringify({device_id: 'jl-2', device_type: 'meter', status: 'offline'}),
    ])
    const r = await cli(['devices', 'import', path])
    expect(r.code).toBe(0)
    expect(r.stdout.split('\n')[0]!.trim().split(/\s+/)).toEqual(['ROWS', 'INSERTED', 'UPDATED', 'SKIPPED'])
    expect(r.stdout.split('\n')[1]!.trim().split(/\s+/)).toEqual(['2', '2', '0', '0'])
    expect(await get('jl-1')).toMatchObject({labels: {site: 'oslo'}, metadata: {pos: {x: 1}}, owner_user_id: 3})
    expect((await get('jl-2')).status).toBe('offline')
  })

  it('reads - from stdin with --format jsonl', async () => {
    const input = ['std-1', 'std-2'].map((id) => JSON.stringify({device_id: id, device_type: 'pump'})).join('\n')
    const r = await cli(['devices', 'import', '-', '--format', 'jsonl', '-o', 'json'], {input})
    expect(expectOk(r)).toEqual({rows: 2, inserted: 2, updated: 0, skipped: 0})
    expect(r.stderr).toBe('')
    expect((await get('std-2')).device_type).toBe('pump')
  })

  describe('--on-conflict', () => {
    let path: string
    beforeAll(async () => {
      path = await file('again.csv', [HEADER, 'new-1,valve,,,site=rome,', 'csv-2,valve,9,3.0.0,site=rome,', 'jl-2,valve,,,,'])
      expect((await cli(['devices', 'deprovision', 'jl-2', '--yes'])).code).toBe(0)
    })

    it('fail (the default): exit 5 listing the line, nothing imported', async () => {
      const before = await table()
      const n = await count()
      const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 5, 'E_IMPORT_EXISTS', {atStart: false})
      expect(err.message).toContain('line 3: device_id csv-2 already exists')
      expect(err.message).toContain('line 4: device_id jl-2 already exists')
      expect(err.message).toContain('nothing was imported')
      expect(err.data).toEqual({lines: [3, 4]})
      expect(await count()).toBe(n)
      expect(await table()).toBe(before)
      expectPlainError(await cli(['devices', 'import', path, '--on-conflict', 'fail']), 5, {atStart: false})
      expect(await table()).toBe(before)
    })

    it('skip: new rows are added, existing ones left as they are', async () => {
      const csv2 = await get('csv-2')
      expect(expectOk(await cli(['devices', 'import', path, '--on-conflict', 'skip', '--json']))).toEqual({rows: 3, inserted: 1, updated: 0, skipped: 2})
      expect((await get('new-1')).labels).toEqual({site: 'rome'})
      expect(await get('csv-2')).toEqual(csv2)
    })

    it('update: existing rows are overwritten, deprovisioned ones are not resurrected', async () => {
      const csv2 = await get('csv-2')
      const result = expectOk(await cli(['devices', 'import', path, '--on-conflict', 'update', '--json']))
      expect(result).toEqual({rows: 3, inserted: 0, updated: 2, skipped: 1})
      expect(await get('csv-2')).toMatchObject({device_type: 'valve', owner_user_id: 9, firmware_version: '3.0.0',
        labels: {site: 'rome'}, row_version: csv2.row_version + 1})
      expect(await get('jl-2')).toMatchObject({status: 'deprovisioned', device_type: 'meter'})
    })
  })

  it('a file with three bad rows: exit 4 listing lines 3, 5 and 6, nothing imported', async () => {
    const path = await file('bad.csv', [
      HEADER,
      'ok-1,thermostat,,,site=berlin,',
      'Bad/Id,thermostat,,,,',
      'ok-2,thermostat,,2.4.0,,',
      'ok-3,thermostat,,1.2,,',
      'ok-1,sensor,,,,',
    ])
    const before = await table()
    const r = await cli(['devices', 'import', path])
    expectPlainError(r, 4)
    expect(r.stderr).toMatch(/3 invalid row\(s\); nothing was imported/)
    expect(r.stderr).toMatch(/^ {2}line 3: invalid device id "Bad\/Id"/m)
    expect(r.stderr).toMatch(/^ {2}line 5: invalid firmware version "1\.2"/m)
    expect(r.stderr).toMatch(/^ {2}line 6: device_id ok-1 repeats line 2/m)
    const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 4, 'E_IMPORT_ROWS')
    expect((err.data!.errors as Array<{line: number}>).map((e) => e.line)).toEqual([3, 5, 6])
    expect(await table()).toBe(before)
  })

  it('a malformed JSON line: exit 4 naming its line', async () => {
    const path = await file('broken.jsonl', [JSON.stringify({device_id: 'jx-1', device_type: 'pump'}), '{"device_id": "jx-2",'])
    const n = await count()
    const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 4, 'E_IMPORT_ROWS')
    expect(err.message).toMatch(/line 2: /)
    expect(await count()).toBe(n)
  })

  it('an unknown column: exit 4 naming it', async () => {
    const path = await file('colour.csv', ['device_id,device_type,colour', 'col-1,lamp,red'])
    const n = await count()
    const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 4, 'E_IMPORT_ROWS')
    expect(err.message).toContain('unknown field "colour"')
    expect(await count()).toBe(n)
  })

  it('a missing file: exit 3', async () => {
    const err = expectJsonError(await cli(['devices', 'import', join(dir, 'nope.csv'), '--json']), 3, 'E_FILE_NOT_FOUND')
    expect(err.message).toContain('nope.csv')
  })

  it('an unknown extension without --format: exit 4; with --format it is read', async () => {
    const path = await file('fleet.txt', [HEADER, 'txt-1,lamp,,,,'])
    const n = await count()
    const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 4, 'E_IMPORT_FORMAT')
    expect(err.hint).toMatch(/--format/)
    expect(await count()).toBe(n)
    expect(expectOk(await cli(['devices', 'import', path, '--format', 'csv', '--json'])).inserted).toBe(1)
  })

  it.each([
    ['an empty CSV file', 'empty.csv', [] as string[]],
    ['a CSV file with only the header', 'header.csv', [HEADER]],
    ['an empty JSON Lines file', 'empty.jsonl', ['', '']],
  ])('%s: exit 4', async (_name, name, lines) => {
    const path = join(dir, name)
    await writeFile(path, lines.join('\n'))
    const n = await count()
    const err = expectJsonError(await cli(['devices', 'import', path, '--json']), 4, 'E_IMPORT_EMPTY')
    expect(err.message).toContain('no devices')
    expect(await count()).toBe(n)
  })
})
