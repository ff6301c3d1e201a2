import {describe, expect, it} from 'vitest'

import {parseSelector, type Requirement} from '../../src/lib/core/selector.js'
import {firmwareKey as k, firmwareMmpPrefix as prefix} from '../../src/lib/registry/firmware-key.js'
import {compileSelector} from '../../src/lib/registry/selector-sql.js'

const RELEASE = `right(firmware_key, 1) = '~'`

describe('compileSelector', () => {
  const cases: Array<[string, string, unknown[]]> = [
    ['', 'TRUE', []],
    ['site=berlin', 'labels @> $1::jsonb', ['{"site":"berlin"}']],
    ['site==berlin', 'labels @> $1::jsonb', ['{"site":"berlin"}']],
    ['tier!=test', 'NOT (labels @> $1::jsonb)', ['{"tier":"test"}']],
    ['site=', 'labels @> $1::jsonb', ['{"site":""}']],
    ['env in (prod,stage)', 'labels @> ANY($1::jsonb[])', [['{"env":"prod"}', '{"env":"stage"}']]],
    ['env notin (dev)', 'NOT (labels @> ANY($1::jsonb[]))', [['{"env":"dev"}']]],
    ['gpu', 'labels ? $1', ['gpu']],
    ['!legacy', 'NOT (labels ? $1)', ['legacy']],
    ['example.com/role=edge', 'labels @> $1::jsonb', ['{"example.com/role":"edge"}']],
    ['labels.type=x', 'labels @> $1::jsonb', ['{"type":"x"}']],
    ['type=thermostat', 'device_type = $1', ['thermostat']],
    ['type!=thermostat', 'device_type <> $1', ['thermostat']],
    ['type in (thermostat,meter)', 'device_type = ANY($1::text[])', [['thermostat', 'meter']]],
    ['status notin (deprovisioned)', 'NOT (status = ANY($1::text[]))', [['deprovisioned']]],
    ['status=active', 'status = $1', ['active']],
    ['firmware<2.5.0', `(firmware_key < $1 AND ${RELEASE})`, [k('2.5.0')]],
    ['firmware=2.4.0', `(firmware_key = $1 AND ${RELEASE})`, [k('2.4.0')]],
    ['firmware!=2.4.0', `NOT COALESCE((firmware_key = $1 AND ${RELEASE}), false)`, [k('2.4.0')]],
    ['firmware in (1.2.3, >=2.0.0)', `((firmware_key = $1 AND ${RELEASE}) OR (firmware_key >= $2 AND ${RELEASE}))`, [k('1.2.3'), k('2.0.0')]],
    ['firmware notin (2.5.0-rc.1)',
      `NOT COALESCE((firmware_key = $1 AND (${RELEASE} OR left(firmware_key, 30) = ANY($2::text[]))), false)`,
      [k('2.5.0-rc.1'), [prefix('2.5.0')]]],
    ['site=berlin,tier!=test,env in (prod,stage),!legacy,type=thermostat,status=active,firmware>=2.4.0 <2.5.0',
      'labels @> $1::jsonb AND NOT (labels @> $2::jsonb) AND labels @> ANY($3::jsonb[]) AND NOT (labels ? $4)' +
      ` AND device_type = $5 AND status = $6 AND (firmware_key >= $7 AND firmware_key < $8 AND ${RELEASE})`,
      ['{"site":"berlin"}', '{"tier":"test"}', ['{"env":"prod"}', '{"env":"stage"}'], 'legacy', 'thermostat', 'active', k('2.4.0'), k('2.5.0')]],
  ]
  it.each(cases)('%j', (selector, sql, params) => {
    const actual: unknown[] = []
    expect(compileSelector(parseSelector(selector), actual)).toBe(sql)
    expect(actual).toEqual(params)
  })

  it('continues numbering after parameters the caller already holds', () => {
    const params: unknown[] = [10, 'cursor']
    expect(compileSelector(parseSelector('site=berlin,type in (a)'), params)).toBe('labels @> $3::jsonb AND device_type = ANY($4::text[])')
    expect(params).toEqual([10, 'cursor', '{"site":"berlin"}', ['a']])
  })

  it('never puts user text into the SQL, even from hand-built requirements', () => {
    const hostile = "x'); DROP TABLE devices; --"
    const requirements: Requirement[] = [
      {kind: 'equals', key: hostile, field: false, value: hostile, negate: false},
      {kind: 'in', key: 'type', field: true, values: [hostile], negate: true},
      {kind: 'exists', key: hostile, field: false, negate: true},
    ]
    const params: unknown[] = []
    const sql = compileSelector(requirements, params)
    expect(sql).toBe('labels @> $1::jsonb AND NOT (device_type = ANY($2::text[])) AND NOT (labels ? $3)')
    expect(params).toEqual([JSON.stringify({[hostile]: hostile}), [hostile], hostile])
  })

  it('turns a firmware equality built by hand into a range', () => {
    const requirement: Requirement = {kind: 'equals', key: 'firmware', field: true, value: '^2.4', negate: false}
    const params: unknown[] = []
    expect(compileSelector([requirement], params)).toBe(`(firmware_key >= $1 AND firmware_key < $2 AND (${RELEASE} OR left(firmware_key, 30) = ANY($3::text[])))`)
    expect(params).toEqual([k('2.4.0'), k('3.0.0-0'), [prefix('3.0.0')]])
  })

  it('refuses field existence built by hand', () => {
    expect(() => compileSelector([{kind: 'exists', key: 'type', field: true, negate: false}], [])).toThrow(/existence/)
  })

  it('reports an invalid firmware range as E_FIRMWARE_RANGE', () => {
    expect(() => compileSelector(parseSelector('firmware=banana'), [])).toThrow(expect.objectContaining({code: 'E_FIRMWARE_RANGE', exitCode: 4}))
  })
})
