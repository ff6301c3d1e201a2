import semver from 'semver'
import {describe, expect, it} from 'vitest'

import {IotctlError} from '../../src/lib/core/errors.js'
import {
  compileFirmwareRange,
  FIRMWARE_MMP_WIDTH,
  firmwareKey,
  firmwareMmpPrefix,
} from '../../src/lib/registry/firmware-key.js'

// SemVer 2.0.0 §11's own example chain, plus the traps of a text encoding.
const VERSIONS = [
  '0.0.0-0', '0.0.0-0.0', '0.0.0-A', '0.0.0', '0.0.1', '0.1.0', '0.9.9', '0.10.0',
  '1.0.0-0', '1.0.0-9', '1.0.0-10', '1.0.0-99', '1.0.0-100', '1.0.0-9007199254740991',
  '1.0.0-0a', '1.0.0-A', '1.0.0-Z', '1.0.0-a', '1.0.0-a.b', '1.0.0-a.z', '1.0.0-a-b', '1.0.0-ab',
  '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.1.0', '1.0.0-alpha.beta', '1.0.0-beta',
  '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0-rc.1+build.7', '1.0.0-rc-1', '1.0.0-rc1',
  '1.0.0', '1.0.0+20130313144700', '1.0.1-0', '1.0.1', '1.1.0', '1.10.0', '2.4.0', '2.5.0-rc.1',
  '2.5.0', '9.0.0', '10.0.0', '10.0.0-x.7.z.92', '9999999999.9999999999.9999999999',
]

const sign = (n: number) => Math.sign(n)
const bytes = (version: string) => Buffer.from(firmwareKey(version), 'utf8')

describe('firmwareKey orders like semver (SemVer 2.0.0 §11)', () => {
  it('agrees with semver.compare on every pair', () => {
    const disagreements: string[] = []
    for (const a of VERSIONS) {
      for (const b of VERSIONS) {
        const expected = sign(semver.compare(a, b))
        if (sign(Buffer.compare(bytes(a), bytes(b))) !== expected) disagreements.push(`${a} vs ${b}`)
      }
    }
    expect(disagreements).toEqual([])
  })

  it('sorts a shuffled list exactly as semver.sort does', () => {
    const shuffled = [...VERSIONS].reverse()
    const byKey = [...shuffled].sort((a, b) => Buffer.compare(bytes(a), bytes(b)) || a.localeCompare(b))
    const bySemver = [...shuffled].sort((a, b) => semver.compare(a, b) || a.localeCompare(b))
    expect(byKey).toEqual(bySemver)
  })

  it.each([
    ['1.0.0', '0000000001' + '0000000000' + '0000000000~'],
    ['2.5.0-rc.1', '000000000200000000050000000000-1rc 0011'],
    ['1.0.0-beta.11', '000000000100000000000000000000-1beta 00211'],
    ['1.0.0+build.5', '000000000100000000000000000000~'],
  ])('%s → %j', (version, key) => {
    expect(firmwareKey(version)).toBe(key)
  })

  it('ignores build metadata (§10)', () => {
    expect(firmwareKey('1.0.0-rc.1+sha.5114f85')).toBe(firmwareKey('1.0.0-rc.1'))
  })

  it('puts "a.b" before "a-b" and "a.z" before "ab" (the separator sorts first)', () => {
    expect(firmwareKey('1.0.0-a.b') < firmwareKey('1.0.0-a-b')).toBe(true)
    expect(firmwareKey('1.0.0-a.z') < firmwareKey('1.0.0-ab')).toBe(true)
  })

  it('has a fixed-width major.minor.patch prefix', () => {
    expect(firmwareMmpPrefix('2.5.0-rc.1')).toBe('000000000200000000050000000000')
    expect(firmwareMmpPrefix('2.5.0')).toHaveLength(FIRMWARE_MMP_WIDTH)
    expect(firmwareMmpPrefix('2.5.0+b')).toBe(firmwareMmpPrefix('2.5.0-alpha'))
  })

  it.each([
    'v1.0.0', '=1.0.0', ' 1.0.0', '1.0.0 ', '1.0', '1', '01.0.0', '1.0.0-01', '1.0.0-', '1.0.0-a..b',
    '1.0.0-a_b', 'latest', '', '10000000000.0.0', '1.0.0-9007199254740992',
  ])('refuses %j with E_FIRMWARE_VERSION', (version) => {
    let caught: unknown
    try {
      firmwareKey(version)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(IotctlError)
    expect((caught as IotctlError).code).toBe('E_FIRMWARE_VERSION')
    expect((caught as IotctlError).exitCode).toBe(4)
    expect((caught as IotctlError).hint).toContain('2.4.0')
  })
})

const k = firmwareKey
const prefix = firmwareMmpPrefix

describe('compileFirmwareRange (SQL text; the semantics are checked against PostgreSQL in integration tests)', () => {
  const cases: Array<[string, string, unknown[]]> = [
    ['<2.5.0', `(firmware_key < $1 AND right(firmware_key, 1) = '~')`, [k('2.5.0')]],
    ['=1.2.3', `(firmware_key = $1 AND right(firmware_key, 1) = '~')`, [k('1.2.3')]],
    ['*', `(right(firmware_key, 1) = '~')`, []],
    ['>=1.0.0 <2.0.0', `(firmware_key >= $1 AND firmware_key < $2 AND right(firmware_key, 1) = '~')`, [k('1.0.0'), k('2.0.0')]],
    // 1.x desugars to >=1.0.0 <2.0.0-0: the upper bound is a prerelease, so 2.0.0-* prereleases
    // would be allowed by the prefix test, but the `<` excludes them all.
    ['1.x || 3.x',
      `((firmware_key >= $1 AND firmware_key < $2 AND (right(firmware_key, 1) = '~' OR left(firmware_key, 30) = ANY($3::text[])))` +
      ` OR (firmware_key >= $4 AND firmware_key < $5 AND (right(firmware_key, 1) = '~' OR left(firmware_key, 30) = ANY($6::text[]))))`,
      [k('1.0.0'), k('2.0.0-0'), [prefix('2.0.0')], k('3.0.0'), k('4.0.0-0'), [prefix('4.0.0')]]],
    ['2.5.0-rc.1 - 2.5.0',
      `(firmware_key >= $1 AND firmware_key <= $2 AND (right(firmware_key, 1) = '~' OR left(firmware_key, 30) = ANY($3::text[])))`,
      [k('2.5.0-rc.1'), k('2.5.0'), [prefix('2.5.0')]]],
  ]
  it.each(cases)('%j', (range, sql, params) => {
    const actual: unknown[] = []
    expect(compileFirmwareRange(range, 'firmware_key', actual)).toBe(sql)
    expect(actual).toEqual(params)
  })

  it('numbers placeholders after parameters already pushed', () => {
    const params: unknown[] = ['x', 'y']
    expect(compileFirmwareRange('>1.0.0-beta', 'd.firmware_key', params)).toBe(
      `(d.firmware_key > $3 AND (right(d.firmware_key, 1) = '~' OR left(d.firmware_key, 30) = ANY($4::text[])))`,
    )
    expect(params).toEqual(['x', 'y', k('1.0.0-beta'), [prefix('1.0.0')]])
  })

  it.each(['banana', '>=a', '1.2.3.4', '>', '<2.5.0 ; DROP TABLE devices', '<99999999999.0.0'])(
    'refuses %j with E_FIRMWARE_RANGE',
    (range) => {
      let caught: unknown
      try {
        compileFirmwareRange(range, 'firmware_key', [])
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(IotctlError)
      expect((caught as IotctlError).code).toBe('E_FIRMWARE_RANGE')
      expect((caught as IotctlError).exitCode).toBe(4)
      expect((caught as IotctlError).hint).toContain('<2.5.0')
    },
  )

  it('refuses a column that is not a plain identifier', () => {
    expect(() => compileFirmwareRange('*', 'firmware_key; --', [])).toThrow(/refusing column/)
  })
})
