// Only the parts used: the package index loads every function (~28 ms of start-up vs ~15 ms).
import Comparator from 'semver/classes/comparator.js'
import Range from 'semver/classes/range.js'
import SemVer from 'semver/classes/semver.js'
import parse from 'semver/functions/parse.js'

import {invalidInput} from '../core/errors.js'

/**
 * An order-preserving text encoding of semantic versions, so PostgreSQL can answer firmware ranges
 * with plain comparisons on an indexed column declared `firmware_key text COLLATE "C"` (byte order).
 *
 * Byte order of keys equals precedence as defined by SemVer 2.0.0 §11 (build metadata ignored, §10):
 *
 *   key = MMMMMMMMMM mmmmmmmmmm pppppppppp  (major, minor, patch: 10 digits each, zero-padded)
 *         then '~'                          for a release
 *         or   '-' id (' ' id)*             for a prerelease
 *   id  = '0' + 2-digit length + digits     numeric identifier
 *       | '1' + identifier                  alphanumeric identifier
 *
 * Why it works, rule by rule of §11:
 *  - §11.2 major, minor, patch compare numerically: fixed width makes byte order numeric order.
 *  - §11.3 a prerelease sorts before its release: '-' (0x2D) < '~' (0x7E).
 *  - §11.4.1 numeric identifiers compare numerically: the length comes first, and strict semver
 *    forbids leading zeros, so a longer number is a larger one; equal lengths compare digit by digit.
 *  - §11.4.2 alphanumeric identifiers compare in ASCII order: '1' + the identifier itself.
 *  - §11.4.3 numeric < alphanumeric: tag '0' < tag '1'.
 *  - §11.4.4 more identifiers win when all before are equal: the shorter key is a prefix of the
 *    longer one. The separator ' ' (0x20) sorts below every identifier character [0-9A-Za-z-], so an
 *    identifier that is a prefix of another sorts first even when more identifiers follow
 *    ("a.z" < "ab", "a.b" < "a-b").
 * A key never ends in '~' unless it is a release, which the prerelease rule of ranges relies on.
 */
export const FIRMWARE_COMPONENT_WIDTH = 10
/** Characters of the major.minor.patch part of a key: `left(firmware_key, 30)`. */
export const FIRMWARE_MMP_WIDTH = 3 * FIRMWARE_COMPONENT_WIDTH
const MAX_COMPONENT = 9_999_999_999
const RELEASE = '~'
const PRERELEASE = '-'
const SEPARATOR = ' '
const VERSION_HINT = 'use a strict semantic version such as 2.4.0 or 2.5.0-rc.1 (no leading "v")'
const RANGE_HINT = 'use a semver range, e.g. <2.5.0, ^2.4, >=1.0.0 <2.0.0, 1.x || 3.x'

type Fail = (reason: string) => never

// A fleet runs a handful of versions: an import of 100,000 devices parses each one once.
const keyCache = new Map<string, string>()

/** The sortable key of a strict semantic version; throws E_FIRMWARE_VERSION otherwise. */
export function firmwareKey(version: string): string {
  const cached = keyCache.get(version)
  if (cached !== undefined) return cached
  const key = computeKey(version)
  if (keyCache.size < 10_000) keyCache.set(version, key)
  return key
}

function computeKey(version: string): string {
  const fail: Fail = (reason) => {
    throw invalidInput('E_FIRMWARE_VERSION', `invalid firmware version ${JSON.stringify(version)}: ${reason}`, {
      hint: VERSION_HINT,
    })
  }
  // semver.valid() tolerates surrounding space and a leading "v" even in strict mode; a stored
  // version is exactly SemVer 2.0.0 text, so those are refused here.
  const parsed = /^\d/.test(version) && version === version.trim() ? parse(version) : null
  if (parsed === null) fail('not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])')
  return keyOf(parsed, fail)
}

/** The fixed-width major.minor.patch part of a version's key. */
export function firmwareMmpPrefix(version: string): string {
  return firmwareKey(version).slice(0, FIRMWARE_MMP_WIDTH)
}

function keyOf(version: SemVer, fail: Fail): string {
  const mmp = [version.major, version.minor, version.patch].map((n) => {
    if (n > MAX_COMPONENT) fail(`${n} exceeds ${MAX_COMPONENT}, the largest component firmware keys can order`)
    return String(n).padStart(FIRMWARE_COMPONENT_WIDTH, '0')
  })
  if (version.prerelease.length === 0) return mmp.join('') + RELEASE
  const ids = version.prerelease.map((id) => identifierKey(String(id), fail))
  return mmp.join('') + PRERELEASE + ids.join(SEPARATOR)
}

function identifierKey(id: string, fail: Fail): string {
  if (!/^\d+$/.test(id)) return '1' + id
  // node-semver compares numeric identifiers as JavaScript numbers; beyond 2^53 it cannot tell them
  // apart, so no byte order could agree with it: refuse instead of ordering differently.
  if (Number(id) > Number.MAX_SAFE_INTEGER) fail(`prerelease identifier ${id} exceeds ${Number.MAX_SAFE_INTEGER}`)
  return '0' + String(id.length).padStart(2, '0') + id
}

/**
 * SQL that is true exactly when `semver.satisfies(version, range)` (default options: prereleases
 * only match as node-semver says). A NULL key yields NULL (never a match); callers that negate
 * must decide what NULL means (selector-sql.ts: `NOT COALESCE(…, false)`).
 * Pushes key parameters onto `params`; `column` must be a plain (optionally qualified) identifier.
 */
export function compileFirmwareRange(range: string, column: string, params: unknown[]): string {
  if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/i.test(column)) {
    throw new Error(`compileFirmwareRange: refusing column ${JSON.stringify(column)}`)
  }
  const parsed = parseRange(range)
  const sets = parsed.set.map((set) => compileComparatorSet(set, range, column, params))
  return sets.length === 1 ? (sets[0] as string) : `(${sets.join(' OR ')})`
}

function parseRange(range: string): Range {
  try {
    return new Range(range)
  } catch (error) {
    throw invalidInput('E_FIRMWARE_RANGE', `invalid firmware range ${JSON.stringify(range)}: ${(error as Error).message}`, {
      hint: RANGE_HINT,
      cause: error,
    })
  }
}

const SQL_OPERATOR: Record<Comparator['operator'], string> = {
  '': '=',
  '=': '=',
  '<': '<',
  '<=': '<=',
  '>': '>',
  '>=': '>=',
}

/**
 * One `||` alternative: every comparator holds (ANY, i.e. `*` / `>=0.0.0`, always does), and a
 * prerelease version only counts if a comparator of this set names a prerelease of the same
 * major.minor.patch (node-semver's testSet, the rule behind `^1.2.3-beta.1` matching
 * 1.2.3-beta.2 but not 1.2.4-beta.1).
 */
function compileComparatorSet(set: readonly Comparator[], range: string, column: string, params: unknown[]): string {
  const fail: Fail = (reason) => {
    throw invalidInput('E_FIRMWARE_RANGE', `invalid firmware range ${JSON.stringify(range)}: ${reason}`, {hint: RANGE_HINT})
  }
  const terms: string[] = []
  const prereleasePrefixes: string[] = []
  for (const comparator of set) {
    if (!(comparator.semver instanceof SemVer)) continue // Comparator.ANY
    const key = keyOf(comparator.semver, fail)
    params.push(key)
    terms.push(`${column} ${SQL_OPERATOR[comparator.operator]} $${params.length}`)
    const prefix = key.slice(0, FIRMWARE_MMP_WIDTH)
    if (comparator.semver.prerelease.length > 0 && !prereleasePrefixes.includes(prefix)) prereleasePrefixes.push(prefix)
  }
  terms.push(releaseOrAllowedPrerelease(column, prereleasePrefixes, params))
  return `(${terms.join(' AND ')})`
}

function releaseOrAllowedPrerelease(column: string, prefixes: string[], params: unknown[]): string {
  const release = `right(${column}, 1) = '${RELEASE}'`
  if (prefixes.length === 0) return release
  params.push(prefixes)
  return `(${release} OR left(${column}, ${FIRMWARE_MMP_WIDTH}) = ANY($${params.length}::text[]))`
}
