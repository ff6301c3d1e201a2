import {invalidInput} from './errors.js'

/**
 * Device selectors: Kubernetes label selector syntax
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors),
 * comma-separated requirements that are AND-ed, plus three device fields. Bare `type`, `status`
 * and `firmware` address fields; `labels.<key>` forces a label (so a label named "type" stays
 * reachable). `firmware` takes a semver range; this module has no package imports, so ranges are
 * carried as text and validated where they are compiled (registry/firmware-key.ts).
 */
export type Requirement =
  | {kind: 'equals'; key: string; field: boolean; value: string; negate: boolean}
  | {kind: 'in'; key: string; field: boolean; values: string[]; negate: boolean}
  | {kind: 'exists'; key: string; field: boolean; negate: boolean}
  | {kind: 'range'; key: 'firmware'; field: true; range: string; negate: boolean}

export const SELECTOR_FIELDS = ['type', 'status', 'firmware'] as const
export type SelectorField = (typeof SELECTOR_FIELDS)[number]
export const SELECTOR_STATUSES = ['active', 'offline', 'deprovisioned'] as const

const LABEL_PREFIX = 'labels.'
const MAX_NAME = 63
const SELECTOR_HINT =
  'e.g. site=berlin,tier!=test,env in (prod,stage),!legacy,type=thermostat,status=active,firmware<2.5.0'
/** Characters that end a word: whitespace and the selector's punctuation. */
const SPECIAL = /[\s,()!=<>]/
const NAME_CHAR = /[A-Za-z0-9_.-]/
const ALNUM = /[A-Za-z0-9]/
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

interface Cursor {
  readonly text: string
  pos: number
}

interface Key {
  name: string
  field: SelectorField | undefined
  start: number
}

/** Parse a selector; empty or blank text selects everything (an empty list). */
export function parseSelector(text: string): Requirement[] {
  const c: Cursor = {text, pos: 0}
  const requirements: Requirement[] = []
  if (text.trim() === '') return requirements
  for (;;) {
    requirements.push(parseRequirement(c))
    skipSpace(c)
    if (peek(c) === undefined) return requirements
    if (peek(c) !== ',') fail(c, c.pos, `expected "," or the end of the selector, found ${show(peek(c))}`)
    const comma = c.pos++
    skipSpace(c)
    if (peek(c) === undefined) fail(c, comma, 'trailing comma: expected a requirement after ","')
    if (peek(c) === ',') fail(c, c.pos, 'empty requirement between two commas')
  }
}

function parseRequirement(c: Cursor): Requirement {
  skipSpace(c)
  if (peek(c) === '!') return parseAbsent(c)
  const key = readKey(c, 'expected a key or "!"')
  skipSpace(c)
  const ch = peek(c)
  if (ch === undefined || ch === ',') {
    if (key.field) fail(c, key.start, `field "${key.field}" needs an operator, e.g. ${example(key.field)}`)
    return {kind: 'exists', key: key.name, field: false, negate: false}
  }
  if (key.field === 'firmware') return parseFirmware(c, key)
  if (ch === '=' || ch === '!') return parseEquality(c, key)
  const opStart = c.pos
  const word = readWord(c)
  if (word === 'in' || word === 'notin') return parseSet(c, key, word === 'notin')
  return fail(c, opStart, `expected "=", "!=", "in" or "notin" after key "${key.name}"`)
}

/** `!key`: Kubernetes' DoesNotExist; fields always exist, so they are refused. */
function parseAbsent(c: Cursor): Requirement {
  c.pos++
  skipSpace(c)
  const key = readKey(c, 'expected a label key after "!"')
  if (key.field) fail(c, key.start, `field "${key.field}" always exists; "!" applies to labels only`)
  skipSpace(c)
  const ch = peek(c)
  if (ch !== undefined && /[=!<>]/.test(ch)) {
    fail(c, c.pos, `"!${key.name}" selects devices without the label; to exclude a value write ${key.name}!=VALUE`)
  }
  return {kind: 'exists', key: key.name, field: false, negate: true}
}

/** `k=v`, `k==v`, `k!=v`. */
function parseEquality(c: Cursor, key: Key): Requirement {
  const opStart = c.pos
  const negate = readEqualityOperator(c)
  const next = peek(c)
  if (next !== undefined && /[=!<>]/.test(next)) {
    const op = c.text.slice(opStart, c.pos + 1)
    const extra = key.field ? '' : ' (comparisons such as < and > apply to firmware only)'
    fail(c, opStart, `unknown operator "${op}" after key "${key.name}"; use =, ==, !=, in or notin${extra}`)
  }
  skipSpace(c)
  const value = readValue(c, key, !key.field)
  return {kind: 'equals', key: key.name, field: key.field !== undefined, value, negate}
}

/** Consumes `=`, `==` or `!=` and says whether it negates. */
function readEqualityOperator(c: Cursor): boolean {
  if (peek(c) === '!') {
    if (c.text[c.pos + 1] !== '=') fail(c, c.pos, 'expected "!=" (a lone "!" only goes before a key)')
    c.pos += 2
    return true
  }
  c.pos++
  if (peek(c) === '=') c.pos++
  return false
}

/** `k in (a,b)` / `k notin (a,b)`: Kubernetes' set-based requirements; the set may not be empty. */
function parseSet(c: Cursor, key: Key, negate: boolean): Requirement {
  const keyword = negate ? 'notin' : 'in'
  skipSpace(c)
  if (peek(c) !== '(') fail(c, c.pos, `expected "(" after "${keyword}", e.g. ${key.name} ${keyword} (a,b)`)
  const open = c.pos++
  const values: string[] = []
  for (;;) {
    skipSpace(c)
    const ch = peek(c)
    if (ch === undefined) fail(c, open, `"(" is never closed; expected ")"`)
    if (ch === ')' && values.length === 0) fail(c, c.pos, `empty value list: "${keyword}" needs at least one value`)
    values.push(key.field === 'firmware' ? readRange(c, /[,)]/, 'a semver range') : readValue(c, key, false))
    skipSpace(c)
    const sep = peek(c)
    if (sep === undefined) fail(c, open, `"(" is never closed; expected ")"`)
    c.pos++
    if (sep === ')') break
    if (sep !== ',') fail(c, c.pos - 1, `expected "," or ")" in the value list, found ${show(sep)}`)
  }
  return {kind: 'in', key: key.name, field: key.field !== undefined, values, negate}
}

/**
 * `firmware<V`, `<=`, `>`, `>=` (operator kept in the range), `firmware=RANGE`, `firmware!=RANGE`
 * and `firmware in (R1,R2)`. A range runs to the next comma because semver ranges contain spaces
 * and `||` but never commas.
 */
function parseFirmware(c: Cursor, key: Key): Requirement {
  const ch = peek(c)
  if (ch === '<' || ch === '>') {
    const opStart = c.pos++
    if (peek(c) === '=') c.pos++
    const op = c.text.slice(opStart, c.pos)
    return firmwareRange(op + readRange(c, /,/, `a version after "firmware${op}"`), false)
  }
  if (ch === '=' || ch === '!') {
    const negate = readEqualityOperator(c)
    return firmwareRange(readRange(c, /,/, 'a semver range, e.g. firmware=^2.4'), negate)
  }
  const opStart = c.pos
  const word = readWord(c)
  if (word === 'in' || word === 'notin') return parseSet(c, key, word === 'notin')
  return fail(c, opStart, 'expected "=", "!=", "<", "<=", ">", ">=", "in" or "notin" after "firmware"')
}

function firmwareRange(range: string, negate: boolean): Requirement {
  return {kind: 'range', key: 'firmware', field: true, range, negate}
}

/** Raw text up to a stop character, trimmed; must not be empty. */
function readRange(c: Cursor, stop: RegExp, expected: string): string {
  skipSpace(c)
  const start = c.pos
  while (c.pos < c.text.length && !stop.test(c.text[c.pos] as string)) c.pos++
  const range = c.text.slice(start, c.pos).trim()
  if (range === '') fail(c, start, `expected ${expected}`)
  return range
}

function readKey(c: Cursor, expected: string): Key {
  const start = c.pos
  const word = readWord(c)
  if (word === '') fail(c, start, `${expected}, found ${show(peek(c))}`)
  const field = (SELECTOR_FIELDS as readonly string[]).includes(word) ? (word as SelectorField) : undefined
  if (field) return {name: word, field, start}
  // `firmware~1.2`, `status:active`: a field name glued to something that is not an operator.
  const glued = SELECTOR_FIELDS.find((f) => word.startsWith(f) && !/[A-Za-z0-9_./-]/.test(word[f.length] as string))
  if (glued) fail(c, start + glued.length, `expected an operator after "${glued}", e.g. ${example(glued)}`)
  const forced = word.startsWith(LABEL_PREFIX)
  const name = forced ? word.slice(LABEL_PREFIX.length) : word
  const nameStart = forced ? start + LABEL_PREFIX.length : start
  if (name === '') fail(c, nameStart, `expected a label key after "${LABEL_PREFIX}"`)
  checkLabelKey(c, nameStart, name)
  return {name, field: undefined, start}
}

/** Kubernetes label key: optional DNS-subdomain prefix (≤ 253) and "/", then a name (≤ 63). */
function checkLabelKey(c: Cursor, start: number, key: string): void {
  const slash = key.indexOf('/')
  if (slash >= 0) {
    const prefix = key.slice(0, slash)
    if (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix)) {
      fail(c, start, `invalid label key prefix "${prefix}": a DNS subdomain of lower-case letters, digits, "-" and "." (at most 253)`)
    }
  }
  checkName(c, start + slash + 1, key.slice(slash + 1), 'label key name', false)
}

function readValue(c: Cursor, key: Key, allowEmpty: boolean): string {
  const start = c.pos
  const value = readWord(c)
  if (key.field === 'status') {
    if (!(SELECTOR_STATUSES as readonly string[]).includes(value)) {
      fail(c, start, `status must be one of ${SELECTOR_STATUSES.join(', ')}; found ${value ? JSON.stringify(value) : show(peek(c))}`)
    }
    return value
  }
  checkName(c, start, value, key.field ? `${key.field} value` : 'label value', allowEmpty)
  return value
}

/** Kubernetes label value / key name: ≤ 63 of [A-Za-z0-9_.-], alphanumeric at both ends. */
function checkName(c: Cursor, start: number, name: string, what: string, allowEmpty: boolean): void {
  if (name === '') {
    if (allowEmpty) return
    fail(c, start, `expected a ${what}, found ${show(peek(c))}`)
  }
  if (name.length > MAX_NAME) fail(c, start, `${what} "${name}" is ${name.length} characters long; at most ${MAX_NAME}`)
  const bad = [...name].findIndex((ch) => !NAME_CHAR.test(ch))
  if (bad >= 0) fail(c, start + bad, `${what} "${name}" may contain only letters, digits, "-", "_" and "."`)
  if (!ALNUM.test(name[0] as string)) fail(c, start, `${what} "${name}" must start with a letter or digit`)
  if (!ALNUM.test(name.at(-1) as string)) fail(c, start + name.length - 1, `${what} "${name}" must end with a letter or digit`)
}

function readWord(c: Cursor): string {
  const start = c.pos
  while (c.pos < c.text.length && !SPECIAL.test(c.text[c.pos] as string)) c.pos++
  return c.text.slice(start, c.pos)
}

function skipSpace(c: Cursor): void {
  while (c.pos < c.text.length && /\s/.test(c.text[c.pos] as string)) c.pos++
}

function peek(c: Cursor): string | undefined {
  return c.text[c.pos]
}

function show(ch: string | undefined): string {
  return ch === undefined ? 'the end of the selector' : JSON.stringify(ch)
}

function example(field: SelectorField): string {
  return {type: 'type=thermostat', status: 'status=active', firmware: 'firmware<2.5.0'}[field]
}

/** Throws E_SELECTOR pointing at `at` (0-based): 1-based column plus an excerpt with a caret. */
function fail(c: Cursor, at: number, message: string, hint = SELECTOR_HINT): never {
  const column = at + 1
  throw invalidInput('E_SELECTOR', `invalid selector at character ${column}: ${message}\n${caretExcerpt(c.text, at)}`, {
    hint,
    data: {position: column, selector: c.text},
  })
}

/** Two lines: the selector (a window of it when long) and a caret under character `at`. */
export function caretExcerpt(text: string, at: number, width = 72): string {
  const flat = text.replace(/[\t\r\n\v\f]/g, ' ')
  let start = 0
  let end = flat.length
  if (flat.length > width) {
    start = Math.max(0, Math.min(at - Math.floor(width / 2), flat.length - width))
    end = start + width
  }
  const head = start > 0 ? '…' : ''
  const tail = end < flat.length ? '…' : ''
  const line = head + flat.slice(start, end) + tail
  return `  ${line}\n  ${' '.repeat(at - start + head.length)}^`
}
