import {describe, expect, it} from 'vitest'
import {decide, otaRoll, parseContentRange, peekAssignmentId, progressMarks, shapeProblem, type OtaDecision, type Slots} from '../../src/lib/simulator/ota-policy.js'

const install = (version: string, min_version: string | null = null) => ({kind: 'install' as const, version, min_version})
const rollback = (version: string) => ({kind: 'rollback' as const, version, min_version: null})

describe('decide: the device checks after the signature, in the protocol order', () => {
  const cases: Array<[string, ReturnType<typeof install> | ReturnType<typeof rollback>, Slots, Partial<OtaDecision>]> = [
    ['newer version installs', install('2.5.0'), {running: '2.4.0'}, {action: 'install'}],
    ['a newer patch installs', install('2.4.1'), {running: '2.4.0'}, {action: 'install'}],
    ['a release after its pre-release installs', install('2.5.0'), {running: '2.5.0-rc.1'}, {action: 'install'}],
    ['same version: already-installed', install('2.4.0'), {running: '2.4.0'}, {action: 'report', state: 'already-installed'}],
    ['older version: downgrade', install('2.3.9'), {running: '2.4.0'}, {action: 'report', state: 'failed', reason: 'downgrade'}],
    ['numeric, not string order: 2.10.0 > 2.9.0', install('2.9.0'), {running: '2.10.0'}, {action: 'report', state: 'failed', reason: 'downgrade'}],
    ['pre-release of the running version: downgrade', install('2.4.0-rc.1'), {running: '2.4.0'}, {action: 'report', state: 'failed', reason: 'downgrade'}],
    ['min_version above running: rejected incompatible', install('3.0.0', '2.5.0'), {running: '2.4.0'}, {action: 'report', state: 'rejected', reason: 'incompatible'}],
    ['min_version equal to running installs', install('3.0.0', '2.4.0'), {running: '2.4.0'}, {action: 'install'}],
    ['downgrade is checked before min_version', install('1.0.0', '9.0.0'), {running: '2.4.0'}, {action: 'report', state: 'failed', reason: 'downgrade'}],
    ['rollback to the inactive slot', rollback('2.4.0'), {running: '2.5.0', inactive: '2.4.0'}, {action: 'rollback'}],
    ['rollback to a version no slot holds', rollback('2.3.0'), {running: '2.5.0', inactive: '2.4.0'}, {action: 'report', state: 'failed', reason: 'rollback-unavailable'}],
    ['rollback with an empty inactive slot', rollback('2.4.0'), {running: '2.5.0'}, {action: 'report', state: 'failed', reason: 'rollback-unavailable'}],
    ['rollback to the running version: already-installed', rollback('2.4.0'), {running: '2.4.0', inactive: '2.3.0'}, {action: 'report', state: 'already-installed'}],
  ]
  it.each(cases)('%s', (_name, assignment, slots, expected) => {
    expect(decide(assignment, slots)).toMatchObject(expected)
  })
})

describe('shapeProblem', () => {
  const good = {kind: 'install' as const, version: '1.2.3', min_version: null, sha256: 'a'.repeat(64), size: 10, url: 'https://h/artifacts/x'}
  it.each([
    ['a complete install', good, undefined],
    ['a rollback without artifact', {kind: 'rollback' as const, version: '1.0.0', min_version: null, url: null}, undefined],
    ['an unknown kind', {...good, kind: 'erase'}, /kind/],
    ['a version that is not semver', {...good, version: 'v1.2'}, /version/],
    ['a bad min_version', {...good, min_version: 'latest'}, /min_version/],
    ['an uppercase digest', {...good, sha256: 'A'.repeat(64)}, /sha256/],
    ['a negative size', {...good, size: -1}, /size/],
    ['a fractional size', {...good, size: 1.5}, /size/],
    ['a plain http URL', {...good, url: 'http://h/x'}, /url/],
  ])('%s', (_name, assignment, expected) => {
    const problem = shapeProblem(assignment as never)
    if (expected === undefined) expect(problem).toBeUndefined()
    else expect(problem).toMatch(expected)
  })
})

describe('otaRoll', () => {
  it('is stable for a device and assignment, in [0, 1), and differs between failure and hang', () => {
    expect(otaRoll('fail', 'dev-1', 'r/install')).toBe(otaRoll('fail', 'dev-1', 'r/install'))
    expect(otaRoll('fail', 'dev-1', 'r/install')).not.toBe(otaRoll('hang', 'dev-1', 'r/install'))
    const rolls = Array.from({length: 2000}, (_, i) => otaRoll('fail', `dev-${i}`, 'r/install'))
    expect(rolls.every((r) => r >= 0 && r < 1)).toBe(true)
    // Roughly uniform: a 30% rate hits roughly 30% of a fleet.
    const share = rolls.filter((r) => r < 0.3).length / rolls.length
    expect(share).toBeGreaterThan(0.25)
    expect(share).toBeLessThan(0.35)
  })
})

describe('peekAssignmentId', () => {
  const envelope = (payload: unknown) => JSON.stringify({payload: Buffer.from(JSON.stringify(payload)).toString('base64'), signature: 'x'})
  it.each([
    ['an envelope with an id', envelope({id: 'r/install'}), 'r/install'],
    ['an id that is not a string', envelope({id: 7}), undefined],
    ['a payload that is JSON null', envelope(null), undefined],
    ['not JSON', 'nope', undefined],
    ['no payload', '{}', undefined],
  ])('%s', (_name, raw, expected) => {
    expect(peekAssignmentId(raw)).toBe(expected)
  })
})

describe('parseContentRange', () => {
  it.each([
    ['bytes 0-65535/300000', {start: 0, end: 65535, total: 300000}],
    ['bytes 299999-299999/300000', {start: 299999, end: 299999, total: 300000}],
    ['bytes */300000', undefined],
    ['bytes 10-5/300000', undefined],
    ['bytes 0-300000/300000', undefined],
    [undefined, undefined],
  ])('%s', (header, expected) => {
    expect(parseContentRange(header)).toEqual(expected)
  })
})

describe('progressMarks', () => {
  it('reports the start and the middle, never more than two per download', () => {
    expect(progressMarks(1_048_576)).toEqual([0, 524_288])
    expect(progressMarks(1)).toEqual([0])
    expect(progressMarks(0)).toEqual([0])
  })
})
