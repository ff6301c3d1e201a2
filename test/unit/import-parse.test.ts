import {describe, expect, it} from 'vitest'
import {detectFormat, parseImport} from '../../src/lib/registry/import-parse.js'

describe('import parsing', () => {
  it('reads CSV with k=v;k=v labels and JSON or k=v metadata, keeping line numbers', async () => {
    const csv = 'device_id,device_type,owner_user_id,firmware_version,labels,metadata\n' +
      'dev-1,thermostat,42,2.4.0,site=berlin;tier=prod,room=3.14\n' +
      '\n' +
      'dev-2,gateway,,,,"{""rack"":{""u"":4}}"\n'
    const rows = await parseImport(csv, 'csv')
    expect(rows.map((r) => r.line)).toEqual([2, 4])
    expect(rows[0]!.device).toMatchObject({device_id: 'dev-1', owner_user_id: 42, firmware_version: '2.4.0',
      labels: {site: 'berlin', tier: 'prod'}, metadata: {room: '3.14'}, status: 'active'})
    expect(rows[1]!.device).toMatchObject({device_id: 'dev-2', owner_user_id: null, firmware_version: null, firmware_key: null, metadata: {rack: {u: 4}}})
  })

  it('reports every bad row by line number and imports nothing', async () => {
    const jsonl = [
      '{"device_id":"dev-1","device_type":"t"}',
      '{"device_id":"Bad/Id","device_type":"t"}',
      'not json',
      '{"device_id":"dev-3","device_type":"t","firmware_version":"1.2"}',
      '{"device_id":"dev-1","device_type":"t"}',
      '{"device_id":"dev-4","device_type":"t","colour":"red"}',
      '[1,2]',
    ].join('\n')
    const error = await parseImport(jsonl, 'jsonl').catch((e) => e)
    expect(error).toMatchObject({code: 'E_IMPORT_ROWS', exitCode: 4})
    expect(error.data.errors.map((e: {line: number}) => e.line)).toEqual([2, 3, 4, 5, 6, 7])
    expect(error.message).toMatch(/line 5: device_id dev-1 repeats line 1/)
    expect(error.message).toMatch(/line 6: unknown field "colour"/)
  })

  it('rejects malformed CSV with the line', async () => {
    await expect(parseImport('device_id,device_type\ndev-1,"unterminated\n', 'csv')).rejects.toMatchObject({code: 'E_IMPORT_CSV', exitCode: 4})
  })

  it('rejects an empty file', async () => {
    await expect(parseImport('device_id,device_type\n', 'csv')).rejects.toMatchObject({code: 'E_IMPORT_EMPTY'})
  })

  it.each([['a.csv', 'csv'], ['b.JSONL', 'jsonl'], ['c.ndjson', 'jsonl']])('detects %s as %s', (file, format) => {
    expect(detectFormat(file)).toBe(format)
  })
  it('needs --format for stdin', () => {
    expect(() => detectFormat('-')).toThrow(expect.objectContaining({code: 'E_IMPORT_FORMAT', exitCode: 4}))
  })
})
