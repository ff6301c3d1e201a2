import {describe, expect, it} from 'vitest'
import {normalizeError, formatError} from '../../src/lib/cli/errors.js'
import {errorEnvelope, renderResult, type View} from '../../src/lib/cli/output.js'
import {canAnimate, canPrompt, useColor, type TerminalEnv} from '../../src/lib/cli/terminal.js'
import {ExitCode, invalidInput} from '../../src/lib/core/errors.js'
import {parseKeyValues} from '../../src/lib/core/key-value.js'
import {maskUrl} from '../../src/lib/core/url.js'

type Row = {id: string; n: number; labels: Record<string, string>}
const view: View<Row> = {
  rows: (r) => r as Row[],
  name: (r) => `thing/${r.id}`,
  columns: [{header: 'ID', get: (r) => r.id}, {header: 'N', get: (r) => r.n}, {header: 'LABELS', get: (r) => r.labels}],
}
const rows: Row[] = [{id: 'a', n: 1, labels: {site: 'berlin', tier: 'prod'}}, {id: 'bbbb', n: 22, labels: {}}]

describe('output formats', () => {
  it('json wraps the result in the {status, result, warnings} envelope', async () => {
    expect(JSON.parse(await renderResult(rows, 'json', view, ['careful']))).toEqual({status: 0, result: rows, warnings: ['careful']})
  })
  it('yaml prints the result itself', async () => {
    expect(await renderResult({a: 1, b: ['x']}, 'yaml', view, [])).toBe('a: 1\nb:\n  - x\n')
  })
  it('name prints kind/name per line', async () => {
    expect(await renderResult(rows, 'name', view, [])).toBe('thing/a\nthing/bbbb\n')
  })
  it('table is borderless, aligned, labels as k=v', async () => {
    const text = await renderResult(rows, 'table', view, [])
    expect(text.split('\n')).toEqual(['ID     N    LABELS', 'a      1    site=berlin,tier=prod', 'bbbb   22', ''])
  })
  it('an empty table prints nothing (the command says so on stderr)', async () => {
    expect(await renderResult([], 'table', view, [])).toBe('')
  })
})

describe('errors', () => {
  it('keeps typed errors and their exit codes', () => {
    const e = invalidInput('E_X', 'bad thing', {hint: 'do this'})
    expect(normalizeError(e)).toBe(e)
    expect(errorEnvelope(e, [])).toEqual({status: 4, error: {code: 'E_X', message: 'bad thing', hint: 'do this'}, warnings: []})
    expect(formatError(e, false)).toBe('Error: bad thing\nNext: do this\n')
  })
  it('maps oclif parse errors to usage (2) and anything else to a bug (70)', () => {
    expect(normalizeError(Object.assign(new Error('Nonexistent flag: --nope\nSee more help with --help'), {oclif: {exit: 2}})))
      .toMatchObject({exitCode: ExitCode.usage, message: 'Nonexistent flag: --nope'})
    expect(normalizeError(new TypeError('x is undefined'))).toMatchObject({exitCode: ExitCode.bug, code: 'E_INTERNAL'})
  })
  it('prints a stack only with --debug', () => {
    const e = normalizeError(new TypeError('boom'))
    expect(formatError(e, false)).not.toMatch(/\n\s+at /)
    expect(formatError(e, true)).toMatch(/\n\s+at /)
  })
})

describe('terminal gates', () => {
  const tty: TerminalEnv = {env: {}, stdinIsTTY: true, stdoutIsTTY: true, stderrIsTTY: true}
  it.each([
    ['a person at a terminal', tty, true, true, true],
    ['CI=true', {...tty, env: {CI: 'true'}}, false, false, false],
    ['NO_COLOR', {...tty, env: {NO_COLOR: '1'}}, false, true, false],
    ['stdout piped', {...tty, stdoutIsTTY: false}, true, true, false],
    ['stdin piped', {...tty, stdinIsTTY: false}, true, false, true],
    ['stderr redirected', {...tty, stderrIsTTY: false}, false, false, true],
  ])('%s', (_name, t, animate, prompt, color) => {
    expect([canAnimate(t), canPrompt(t), useColor(t)]).toEqual([animate, prompt, color])
  })
})

describe('small parsers', () => {
  it('parses k=v pairs, values may contain =', () => {
    expect(parseKeyValues(['a=1', 'b=x=y', 'c='], '--label')).toEqual({a: '1', b: 'x=y', c: ''})
  })
  it.each(['novalue', '=x'])('rejects %s with exit 4', (pair) => {
    expect(() => parseKeyValues([pair], '--label')).toThrow(expect.objectContaining({exitCode: 4, code: 'E_KEY_VALUE'}))
  })
  it.each([
    ['postgres://u:pw@h:5432/db', 'postgres://u:***@h:5432/db'],
    ['postgres://h/db?password=pw&sslmode=require', 'postgres://h/db?password=***&sslmode=require'],
    ['host=h password=pw dbname=x', 'host=h password=*** dbname=x'],
    ['postgres://h/db', 'postgres://h/db'],
  ])('masks %s', (raw, masked) => {
    expect(maskUrl(raw)).toBe(masked)
  })
})
