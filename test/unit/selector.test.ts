import {describe, expect, it} from 'vitest'

import {IotctlError} from '../../src/lib/core/errors.js'
import {caretExcerpt, parseSelector, type Requirement} from '../../src/lib/core/selector.js'

const label = (key: string, value: string, negate = false): Requirement => ({kind: 'equals', key, field: false, value, negate})
const field = (key: string, value: string, negate = false): Requirement => ({kind: 'equals', key, field: true, value, negate})
const set = (key: string, values: string[], negate = false, isField = false): Requirement => ({kind: 'in', key, field: isField, values, negate})
const exists = (key: string, negate = false): Requirement => ({kind: 'exists', key, field: false, negate})
const range = (text: string, negate = false): Requirement => ({kind: 'range', key: 'firmware', field: true, range: text, negate})

describe('parseSelector: accepted selectors', () => {
  const cases: Array<[string, Requirement[]]> = [
    ['', []],
    ['   \t ', []],
    ['site=berlin', [label('site', 'berlin')]],
    ['site==berlin', [label('site', 'berlin')]],
    ['tier!=test', [label('tier', 'test', true)]],
    ['site=', [label('site', '')]],
    ['site!=', [label('site', '', true)]],
    ['site=berlin,tier!=test,env in (prod,stage),env notin (dev),!legacy,gpu', [
      label('site', 'berlin'), label('tier', 'test', true), set('env', ['prod', 'stage']),
      set('env', ['dev'], true), exists('legacy', true), exists('gpu'),
    ]],
    ['  site = berlin ,  env in ( prod , stage ) , ! legacy  ', [label('site', 'berlin'), set('env', ['prod', 'stage']), exists('legacy', true)]],
    ['env in(prod)', [set('env', ['prod'])]],
    ['example.com/role=edge,k8s.io/app_name.v-2=A.b_c-9', [label('example.com/role', 'edge'), label('k8s.io/app_name.v-2', 'A.b_c-9')]],
    ['x=' + 'a'.repeat(63), [label('x', 'a'.repeat(63))]],
    ['type=thermostat', [field('type', 'thermostat')]],
    ['type!=thermostat', [field('type', 'thermostat', true)]],
    ['type in (thermostat,meter)', [set('type', ['thermostat', 'meter'], false, true)]],
    ['status=active', [field('status', 'active')]],
    ['status notin (offline,deprovisioned)', [set('status', ['offline', 'deprovisioned'], true, true)]],
    ['labels.type=x,labels.status', [label('type', 'x'), exists('status')]],
    ['!labels.firmware', [exists('firmware', true)]],
    ['Type=x', [label('Type', 'x')]],
    ['types=x,type/x=y,firmware.v=1', [label('types', 'x'), label('type/x', 'y'), label('firmware.v', '1')]],
    ['firmware<2.5.0', [range('<2.5.0')]],
    ['firmware<=2.5.0', [range('<=2.5.0')]],
    ['firmware>2.5.0', [range('>2.5.0')]],
    ['firmware>=2.5.0', [range('>=2.5.0')]],
    ['firmware >= 2.5.0', [range('>=2.5.0')]],
    ['firmware=2.4.0', [range('2.4.0')]],
    ['firmware==2.4.0', [range('2.4.0')]],
    ['firmware!=2.4.0', [range('2.4.0', true)]],
    ['firmware=>=1.0.0 <2.0.0', [range('>=1.0.0 <2.0.0')]],
    ['firmware=1.x || 2.x ,site=berlin', [range('1.x || 2.x'), label('site', 'berlin')]],
    ['firmware!=^2.4.0-rc.1', [range('^2.4.0-rc.1', true)]],
    ['firmware in (1.x || 2.x, >=3.0.0 <3.1.0)', [set('firmware', ['1.x || 2.x', '>=3.0.0 <3.1.0'], false, true)]],
    ['firmware notin (2.4.0)', [set('firmware', ['2.4.0'], true, true)]],
  ]
  it.each(cases)('%j', (text, expected) => {
    expect(parseSelector(text)).toEqual(expected)
  })
})

describe('parseSelector: errors point at the offending character', () => {
  // [selector, 1-based position, fragment of the message]
  const cases: Array<[string, number, string]> = [
    ['site=berlin tier', 13, 'expected "," or the end'],
    ['env in (prod,stage', 8, '"(" is never closed'],
    ['env in (', 8, '"(" is never closed'],
    ['env in ()', 9, 'empty value list'],
    ['env notin ( )', 13, 'empty value list'],
    ['env in (a,)', 11, 'expected a label value'],
    ['env in (a b)', 11, 'expected "," or ")"'],
    ['env in prod', 8, 'expected "(" after "in"'],
    ['env in', 7, 'expected "(" after "in"'],
    ['env notin prod', 11, 'expected "(" after "notin"'],
    ['env between (a)', 5, 'expected "=", "!=", "in" or "notin" after key "env"'],
    ['s@te=berlin', 2, 'may contain only letters, digits'],
    ['-site=berlin', 1, 'must start with a letter or digit'],
    ['site.=berlin', 5, 'must end with a letter or digit'],
    ['Example.com/site=x', 1, 'invalid label key prefix'],
    ['a/b/c=x', 4, 'may contain only'],
    ['k'.repeat(64) + '=x', 1, '64 characters long; at most 63'],
    ['site=' + 'v'.repeat(64), 6, '64 characters long; at most 63'],
    ['site=ber@lin', 9, 'may contain only'],
    ['site=berlin,', 12, 'trailing comma'],
    ['site=berlin, ', 12, 'trailing comma'],
    ['site=berlin,,tier=a', 13, 'empty requirement between two commas'],
    [',site=berlin', 1, 'expected a key or "!"'],
    ['site=>x', 5, 'unknown operator "=>"'],
    ['site===x', 5, 'unknown operator "==="'],
    ['site<3', 5, 'expected "=", "!=", "in" or "notin"'],
    ['site!x', 5, 'expected "!="'],
    ['!=x', 2, 'expected a label key after "!"'],
    ['! (a)', 3, 'expected a label key after "!"'],
    ['!', 2, 'expected a label key after "!"'],
    ['!site=x', 6, 'to exclude a value write site!=VALUE'],
    ['labels.=x', 8, 'expected a label key after "labels."'],
    ['type', 1, 'field "type" needs an operator'],
    ['!status', 2, 'field "status" always exists'],
    ['firmware', 1, 'field "firmware" needs an operator'],
    ['status=broken', 8, 'status must be one of active, offline, deprovisioned'],
    ['status in (active,gone)', 19, 'status must be one of'],
    ['status=', 8, 'status must be one of'],
    ['type=', 6, 'expected a type value'],
    ['firmware=', 10, 'expected a semver range'],
    ['firmware<', 10, 'expected a version after "firmware<"'],
    ['firmware>=  ,a', 13, 'expected a version after "firmware>="'],
    ['firmware~1.2', 9, 'expected an operator after "firmware", e.g. firmware<2.5.0'],
    ['status:active', 7, 'expected an operator after "status"'],
    ['firmware in (1.x,', 13, '"(" is never closed'],
    ['firmware in (1.x,,2.x)', 18, 'expected a semver range'],
  ]
  it.each(cases)('%j fails at character %i', (text, position, fragment) => {
    let caught: unknown
    try {
      parseSelector(text)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(IotctlError)
    const error = caught as IotctlError
    expect(error.code).toBe('E_SELECTOR')
    expect(error.exitCode).toBe(4)
    expect(error.data?.position).toBe(position)
    expect(error.message).toContain(`invalid selector at character ${position}: `)
    expect(error.message).toContain(fragment)
    expect(error.message).toContain(`\n  ${text}\n  ${' '.repeat(position - 1)}^`)
    expect(error.hint).toMatch(/site=berlin/)
  })
})

describe('caretExcerpt', () => {
  it('shows the whole selector when short', () => {
    expect(caretExcerpt('a=b c', 4)).toBe('  a=b c\n      ^')
  })
  it('points past the end for an error at the end of input', () => {
    expect(caretExcerpt('env in', 6)).toBe('  env in\n        ^')
  })
  it('flattens tabs and newlines so the caret stays aligned', () => {
    expect(caretExcerpt('a=b,\n\tc', 6)).toBe('  a=b,  c\n        ^')
  })
  it('shows a window of a long selector, caret still under the character', () => {
    const text = Array.from({length: 30}, (_, i) => `k${i}=v`).join(',')
    const at = text.indexOf('k20')
    const [line, caret] = caretExcerpt(text, at).split('\n') as [string, string]
    expect(line.startsWith('  …')).toBe(true)
    expect(line.endsWith('…')).toBe(true)
    expect(line.slice(caret.indexOf('^'), caret.indexOf('^') + 3)).toBe('k20')
  })
})
