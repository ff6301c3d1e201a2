import {createHash, generateKeyPairSync, randomBytes, verify, type KeyObject} from 'node:crypto'

import {describe, expect, it} from 'vitest'

import {openAssignment, sealAssignment, type Assignment, type AssignmentEnvelope} from '../../src/lib/firmware/assignment.js'
import {encodeManifest, signManifest, verifyManifest, type FirmwareManifest} from '../../src/lib/firmware/manifest.js'
import {checkSignedPath, parseRange, signPath} from '../../src/lib/firmware/signed-url.js'
import {algorithmOf, keyIdOf, signBytes, verifyBytes} from '../../src/lib/firmware/signing.js'

interface Pair {privateKey: KeyObject; publicKey: KeyObject}
const ecdsa = (): Pair => generateKeyPairSync('ec', {namedCurve: 'P-256'})
const ed25519 = (): Pair => generateKeyPairSync('ed25519')

// Two keys of each algorithm: the fleet's key and an attacker's (or a rotated-out) key.
const KEYS = {'ecdsa-p256': [ecdsa(), ecdsa()], 'ed25519': [ed25519(), ed25519()]} as const
const ALGORITHMS = Object.keys(KEYS) as Array<keyof typeof KEYS>

const MANIFEST_PREFIX = 'iotctl/firmware-manifest/v1\n'
const ASSIGNMENT_PREFIX = 'iotctl/ota-assignment/v1\n'

const NOW = Date.parse('2026-11-25T08:00:00.000Z')
const DEVICE = {id: 'dev-1', type: 'thermostat'}

const assignment = (overrides: Partial<Assignment> = {}): Assignment => ({
  schema: 1, id: 'fw-250/install', kind: 'install', rollout: 'fw-250', device: 'dev-1', device_type: 'thermostat',
  version: '2.5.0', version_code: 7, min_version: null, sha256: 'ab'.repeat(32), size: 1_048_576,
  url: 'https://127.0.0.1:8443/artifacts/sha256/abab?exp=1&sig=x',
  issued_at: '2026-11-25T07:00:00.000Z', expires_at: '2026-11-26T08:00:00.000Z', ...overrides,
})

const manifest = (overrides: Partial<FirmwareManifest> = {}): FirmwareManifest => ({
  schema: 1, device_type: 'thermostat', version: '2.5.0', version_code: 7, min_version: '2.0.0', sha256: 'cd'.repeat(32),
  size: 1_048_576, created_at: '2026-11-25T07:00:00.000Z', key_id: '0123456789abcdef', ...overrides,
})

/** A valid envelope around arbitrary payload bytes, signed as an assignment with `key`. */
function envelopeOf(payload: string, key: KeyObject): string {
  const bytes = Buffer.from(payload, 'utf8')
  return JSON.stringify({payload: bytes.toString('base64'), signature: signBytes('assignment', bytes, key), key_id: keyIdOf(key)})
}

const flip = (buffer: Buffer, index: number): Buffer => {
  const copy = Buffer.from(buffer)
  copy[index]! ^= 0x01
  return copy
}

describe.each(ALGORITHMS)('signBytes / verifyBytes with %s', (algorithm) => {
  const [{privateKey, publicKey}, other] = KEYS[algorithm]
  const payload = Buffer.from(JSON.stringify(assignment()), 'utf8')

  it('round trip: verifies with the public key', () => {
    const signature = signBytes('assignment', payload, privateKey)
    expect(verifyBytes('assignment', payload, signature, publicKey)).toBe(true)
    expect(verifyBytes('manifest', payload, signBytes('manifest', payload, privateKey), publicKey)).toBe(true)
  })

  it('the signature covers the domain prefix followed by the bytes (docs/PROTOCOL.md), checked with node:crypto directly', () => {
    const signature = Buffer.from(signBytes('assignment', payload, privateKey), 'base64')
    const digest = algorithm === 'ed25519' ? null : 'sha256'
    expect(verify(digest, Buffer.concat([Buffer.from(ASSIGNMENT_PREFIX), payload]), publicKey, signature)).toBe(true)
    expect(verify(digest, payload, publicKey, signature)).toBe(false)
    const manifestSignature = Buffer.from(signBytes('manifest', payload, privateKey), 'base64')
    expect(verify(digest, Buffer.concat([Buffer.from(MANIFEST_PREFIX), payload]), publicKey, manifestSignature)).toBe(true)
    if (algorithm === 'ed25519') expect(signature).toHaveLength(64) // RFC 8032
    else expect(signature[0]).toBe(0x30) // DER SEQUENCE
  })

  it('domain separation: a manifest signature does not verify as an assignment, and vice versa', () => {
    expect(verifyBytes('assignment', payload, signBytes('manifest', payload, privateKey), publicKey)).toBe(false)
    expect(verifyBytes('manifest', payload, signBytes('assignment', payload, privateKey), publicKey)).toBe(false)
  })

  it('fails with another key of the same algorithm, and with a key of the other algorithm', () => {
    const signature = signBytes('assignment', payload, privateKey)
    expect(verifyBytes('assignment', payload, signature, other.publicKey)).toBe(false)
    const foreign = KEYS[algorithm === 'ed25519' ? 'ecdsa-p256' : 'ed25519'][0]
    expect(verifyBytes('assignment', payload, signature, foreign.publicKey)).toBe(false)
  })

  it('one flipped bit in any byte of the payload fails', () => {
    const signature = signBytes('assignment', payload, privateKey)
    const passing = [...payload.keys()].filter((i) => verifyBytes('assignment', flip(payload, i), signature, publicKey))
    expect(passing).toEqual([])
  })

  it('one flipped bit in any byte of the signature fails (malformed DER included: false, no throw)', () => {
    const signature = Buffer.from(signBytes('assignment', payload, privateKey), 'base64')
    const passing = [...signature.keys()].filter((i) => verifyBytes('assignment', payload, flip(signature, i).toString('base64'), publicKey))
    expect(passing).toEqual([])
  })

  it.each(['', 'not base64 at all!', Buffer.alloc(64).toString('base64'), Buffer.alloc(200, 0x30).toString('base64')])('garbage signature %j is false, not a throw', (signature) => {
    expect(verifyBytes('assignment', payload, signature, publicKey)).toBe(false)
  })

  it('keyIdOf: 16 hex digits of SHA-256 over the SPKI DER, the same for the private and the public half', () => {
    const id = keyIdOf(publicKey)
    expect(id).toMatch(/^[0-9a-f]{16}$/)
    expect(keyIdOf(privateKey)).toBe(id)
    expect(id).toBe(createHash('sha256').update(publicKey.export({format: 'der', type: 'spki'})).digest('hex').slice(0, 16))
    expect(keyIdOf(other.publicKey)).not.toBe(id)
  })

  it('algorithmOf names the algorithm, for either half', () => {
    expect(algorithmOf(privateKey)).toBe(algorithm)
    expect(algorithmOf(publicKey)).toBe(algorithm)
  })
})

describe.each(ALGORITHMS)('firmware manifest with %s', (algorithm) => {
  const [{privateKey, publicKey}, other] = KEYS[algorithm]

  it('signs the encoded bytes and verifies back to the same manifest', () => {
    const m = manifest()
    const {bytes, signature} = signManifest(m, privateKey)
    expect(bytes).toEqual(encodeManifest(m))
    expect(verifyManifest(bytes, signature, publicKey)).toEqual(m)
  })

  it('encodes keys in a fixed order, whatever the order of the object', () => {
    const m = manifest()
    const reordered = Object.fromEntries(Object.entries(m).reverse()) as unknown as FirmwareManifest
    expect(encodeManifest(reordered)).toEqual(encodeManifest(m))
    expect(Object.keys(JSON.parse(encodeManifest(reordered).toString('utf8')) as object)).toEqual(
      ['schema', 'device_type', 'version', 'version_code', 'min_version', 'sha256', 'size', 'created_at', 'key_id'])
  })

  it('refuses tampered bytes, a tampered signature, another key', () => {
    const {bytes, signature} = signManifest(manifest(), privateKey)
    const tampered = Buffer.from(bytes.toString('utf8').replace('"2.5.0"', '"2.6.0"'), 'utf8')
    expect(tampered).not.toEqual(bytes)
    expect(verifyManifest(tampered, signature, publicKey)).toBeUndefined()
    expect(verifyManifest(bytes, flip(Buffer.from(signature, 'base64'), 10).toString('base64'), publicKey)).toBeUndefined()
    expect(verifyManifest(bytes, signature, other.publicKey)).toBeUndefined()
  })

  it('an assignment signature does not pass as a manifest', () => {
    const env = sealAssignment(assignment(), privateKey, keyIdOf(privateKey))
    expect(verifyManifest(Buffer.from(env.payload, 'base64'), env.signature, publicKey)).toBeUndefined()
  })

  it('a manifest signature does not pass as an assignment (bad-signature)', () => {
    // Manifest-shaped bytes that would also be an acceptable assignment payload for this device.
    const bytes = Buffer.from(JSON.stringify(assignment()), 'utf8')
    const signature = signBytes('manifest', bytes, privateKey)
    const raw = JSON.stringify({payload: bytes.toString('base64'), signature, key_id: keyIdOf(privateKey)})
    expect(openAssignment(raw, publicKey, DEVICE, NOW)).toMatchObject({ok: false, reason: 'bad-signature', id: 'fw-250/install'})
  })
})

describe.each(ALGORITHMS)('openAssignment with %s', (algorithm) => {
  const [{privateKey, publicKey}, other] = KEYS[algorithm]
  const seal = (a: Assignment, key = privateKey) => JSON.stringify(sealAssignment(a, key, keyIdOf(key)))

  it('ok for a valid assignment: returns it as signed (string and Buffer input)', () => {
    const a = assignment()
    expect(openAssignment(seal(a), publicKey, DEVICE, NOW)).toEqual({ok: true, assignment: a})
    expect(openAssignment(Buffer.from(seal(a)), publicKey, DEVICE, NOW)).toEqual({ok: true, assignment: a})
  })

  it('ok for a rollback assignment (url null)', () => {
    const a = assignment({kind: 'rollback', id: 'fw-250/rollback', url: null})
    expect(openAssignment(seal(a), publicKey, DEVICE, NOW)).toEqual({ok: true, assignment: a})
  })

  it('the envelope names the key that signed it', () => {
    const env = sealAssignment(assignment(), privateKey, keyIdOf(privateKey))
    expect(env.key_id).toBe(keyIdOf(publicKey))
    expect(JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'))).toEqual(assignment())
  })

  const valid = () => sealAssignment(assignment(), privateKey, keyIdOf(privateKey))
  const withEnvelope = (patch: Record<string, unknown>) => JSON.stringify({...valid(), ...patch})
  /** The version in the signed bytes, 2.5.0, turned into 2.4.0 by one flipped bit ('5' ^ 1 = '4'). */
  const flippedPayload = () => {
    const bytes = Buffer.from(valid().payload, 'base64')
    return flip(bytes, bytes.indexOf('"2.5.0"') + 3).toString('base64')
  }
  const otherAlgorithm = KEYS[algorithm === 'ed25519' ? 'ecdsa-p256' : 'ed25519'][0].privateKey
  const expired = '2020-01-01T00:00:00.000Z'
  const refusal = (name: string, raw: () => string | Buffer, reason: string, id?: string) => ({name, raw, reason, id})
  const refusals = [
    refusal('not JSON', () => 'not json {', 'malformed'),
    refusal('empty', () => '', 'malformed'),
    refusal('JSON null', () => 'null', 'malformed'),
    refusal('a JSON array', () => '[]', 'malformed'),
    refusal('a JSON string', () => '"payload"', 'malformed'),
    refusal('missing payload', () => JSON.stringify({signature: valid().signature, key_id: 'x'}), 'malformed'),
    refusal('missing signature', () => JSON.stringify({payload: valid().payload, key_id: 'x'}), 'malformed'),
    refusal('payload not a string', () => withEnvelope({payload: 42}), 'malformed'),
    refusal('signature not a string', () => withEnvelope({signature: ['x']}), 'malformed'),
    refusal('payload not JSON', () => envelopeOf('not json', privateKey), 'malformed'),
    refusal('signed by another key of the same algorithm', () => seal(assignment(), other.privateKey), 'bad-signature', 'fw-250/install'),
    refusal('signed by a key of the other algorithm', () => seal(assignment(), otherAlgorithm), 'bad-signature', 'fw-250/install'),
    refusal('payload swapped for one naming this device (signature checked before the device)',
      () => withEnvelope({payload: Buffer.from(JSON.stringify(assignment({id: 'fw-250/x'}))).toString('base64'),
        signature: sealAssignment(assignment({device: 'dev-2'}), privateKey, 'k').signature}), 'bad-signature', 'fw-250/x'),
    refusal('one flipped bit in the payload', () => withEnvelope({payload: flippedPayload()}), 'bad-signature', 'fw-250/install'),
    refusal('one flipped bit in the signature', () => withEnvelope({signature: flip(Buffer.from(valid().signature, 'base64'), 20).toString('base64')}),
      'bad-signature', 'fw-250/install'),
    refusal('empty signature', () => withEnvelope({signature: ''}), 'bad-signature', 'fw-250/install'),
    refusal('another device\'s assignment', () => seal(assignment({device: 'dev-2'})), 'wrong-device', 'fw-250/install'),
    refusal('another device type', () => seal(assignment({device_type: 'meter'})), 'wrong-device-type', 'fw-250/install'),
    refusal('expired an hour ago', () => seal(assignment({expires_at: new Date(NOW - 3_600_000).toISOString()})), 'expired', 'fw-250/install'),
    refusal('expiring exactly now', () => seal(assignment({expires_at: new Date(NOW).toISOString()})), 'expired', 'fw-250/install'),
    refusal('another device and expired: the device check comes first', () => seal(assignment({device: 'dev-2', expires_at: expired})),
      'wrong-device', 'fw-250/install'),
    refusal('another type and expired: the type check comes first', () => seal(assignment({device_type: 'meter', expires_at: expired})),
      'wrong-device-type', 'fw-250/install'),
  ]
  it.each(refusals)('$name -> $reason', ({raw, reason, id}) => {
    const result = openAssignment(raw(), publicKey, DEVICE, NOW)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.reason).toBe(reason)
    expect(result.id).toBe(id)
    expect(result.detail).not.toBe('')
  })

  it('one millisecond before expiry is still ok', () => {
    const a = assignment({expires_at: new Date(NOW + 1).toISOString()})
    expect(openAssignment(seal(a), publicKey, DEVICE, NOW)).toEqual({ok: true, assignment: a})
  })

  it('envelope shape: the published fields', () => {
    const env: AssignmentEnvelope = valid()
    expect(Object.keys(env).sort()).toEqual(['key_id', 'payload', 'signature'])
  })
})

// docs/PROTOCOL.md: the first device check is the JSON shape (`malformed`). A payload that is
// correctly signed but is not an assignment must be refused as malformed: never accepted, never a
// crash of the device. (One algorithm is enough: the check comes after parsing, not from the key.)
describe('openAssignment: the payload\'s JSON shape', () => {
  const [{privateKey, publicKey}] = KEYS['ecdsa-p256']
  const required = ['id', 'device', 'device_type', 'version', 'sha256', 'size', 'expires_at'] as const
  it.each(required)('a signed payload without `%s` is malformed', (field) => {
    const a: Partial<Assignment> = assignment()
    delete a[field]
    const result = openAssignment(envelopeOf(JSON.stringify(a), privateKey), publicKey, DEVICE, NOW)
    expect(result).toMatchObject({ok: false, reason: 'malformed'})
  })

  it.each(['null', '[]', '42', '"dev-1"'])('a signed payload %s (JSON, not an object) is malformed, no throw', (payload) => {
    let result: ReturnType<typeof openAssignment> | undefined
    expect(() => {
      result = openAssignment(envelopeOf(payload, privateKey), publicKey, DEVICE, NOW)
    }).not.toThrow()
    expect(result).toMatchObject({ok: false, reason: 'malformed'})
  })
})

describe('signPath / checkSignedPath', () => {
  const secret = randomBytes(32)
  const path = '/artifacts/sha256/' + 'ab'.repeat(32)
  const EXP = 1_800_000_000
  const split = (url: string) => {
    const parsed = new URL(url, 'https://127.0.0.1:8443')
    return {path: parsed.pathname, query: parsed.searchParams}
  }
  const signed = split(signPath(secret, path, EXP))
  const withQuery = (patch: Record<string, string | undefined>) => {
    const query = new URLSearchParams(signed.query)
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) query.delete(k)
      else query.set(k, v)
    }
    return query
  }

  it('the URL is the path with exp and sig', () => {
    expect(signed.path).toBe(path)
    expect(signed.query.get('exp')).toBe(String(EXP))
    expect(signed.query.get('sig')).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  const cases: Array<[string, () => ReturnType<typeof checkSignedPath>, ReturnType<typeof checkSignedPath>]> = [
    ['valid, well before exp', () => checkSignedPath(secret, signed.path, signed.query, EXP - 3600), {ok: true}],
    ['valid, exactly at exp', () => checkSignedPath(secret, signed.path, signed.query, EXP), {ok: true}],
    ['expired one second after exp', () => checkSignedPath(secret, signed.path, signed.query, EXP + 1), {ok: false, status: 403, reason: 'expired'}],
    ['tampered path', () => checkSignedPath(secret, path.replace(/b$/, 'c'), signed.query, EXP - 1), {ok: false, status: 403, reason: 'bad-signature'}],
    ['another artifact\'s path', () => checkSignedPath(secret, '/artifacts/sha256/' + 'cd'.repeat(32), signed.query, EXP - 1),
      {ok: false, status: 403, reason: 'bad-signature'}],
    ['tampered exp (extended)', () => checkSignedPath(secret, signed.path, withQuery({exp: String(EXP + 86_400)}), EXP - 1),
      {ok: false, status: 403, reason: 'bad-signature'}],
    ['tampered exp on an expired URL is bad-signature, not ok', () => checkSignedPath(secret, signed.path, withQuery({exp: String(EXP + 86_400)}), EXP + 10),
      {ok: false, status: 403, reason: 'bad-signature'}],
    ['tampered sig, same length', () => {
      const sig = signed.query.get('sig')!
      return checkSignedPath(secret, signed.path, withQuery({sig: (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)}), EXP - 1)
    }, {ok: false, status: 403, reason: 'bad-signature'}],
    ['truncated sig', () => checkSignedPath(secret, signed.path, withQuery({sig: signed.query.get('sig')!.slice(0, 10)}), EXP - 1),
      {ok: false, status: 403, reason: 'bad-signature'}],
    ['another secret', () => checkSignedPath(randomBytes(32), signed.path, signed.query, EXP - 1), {ok: false, status: 403, reason: 'bad-signature'}],
    ['missing sig', () => checkSignedPath(secret, signed.path, withQuery({sig: undefined}), EXP - 1), {ok: false, status: 403, reason: 'missing-signature'}],
    ['empty sig', () => checkSignedPath(secret, signed.path, withQuery({sig: ''}), EXP - 1), {ok: false, status: 403, reason: 'missing-signature'}],
    ['exp not a number', () => checkSignedPath(secret, signed.path, withQuery({exp: 'soon'}), EXP - 1), {ok: false, status: 403, reason: 'missing-signature'}],
    ['no query at all', () => checkSignedPath(secret, signed.path, new URLSearchParams(), EXP - 1), {ok: false, status: 403, reason: 'missing-signature'}],
  ]
  it.each(cases)('%s', (_name, check, expected) => {
    expect(check()).toEqual(expected)
  })

  it('missing exp with a sig present is refused', () => {
    expect(checkSignedPath(secret, signed.path, withQuery({exp: undefined}), EXP - 1)).toMatchObject({ok: false, status: 403})
  })
})

describe('parseRange (RFC 9110 §14.1.2), a 1000-byte artifact', () => {
  const SIZE = 1000
  const cases: Array<[string | undefined, {start: number; end: number} | 'unsatisfiable' | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['bytes=0-99', {start: 0, end: 99}],
    ['bytes=0-0', {start: 0, end: 0}],
    ['bytes=999-999', {start: 999, end: 999}],
    ['bytes=100-', {start: 100, end: 999}],
    ['bytes=0-', {start: 0, end: 999}],
    ['bytes=999-', {start: 999, end: 999}],
    ['bytes=-50', {start: 950, end: 999}],
    ['bytes=-1', {start: 999, end: 999}],
    ['bytes=-1000', {start: 0, end: 999}],
    ['bytes=-5000', {start: 0, end: 999}], // a suffix longer than the representation: all of it
    ['bytes=900-5000', {start: 900, end: 999}], // last-pos beyond the end clamps
    ['bytes=0-99999999999999999999', {start: 0, end: 999}],
    [' bytes=0-99 ', {start: 0, end: 99}],
    ['Bytes=0-99', {start: 0, end: 99}], // range units are case-insensitive (RFC 9110 §14.1)
    ['bytes=1000-', 'unsatisfiable'],
    ['bytes=1000-2000', 'unsatisfiable'],
    ['bytes=5000-', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
    ['bytes=-', 'unsatisfiable'],
    ['bytes=5-3', 'unsatisfiable'],
    ['bytes=0-99,200-299', 'unsatisfiable'],
    ['bytes=0-99, 200-299', 'unsatisfiable'],
    ['bytes=abc', 'unsatisfiable'],
    ['bytes=a-b', 'unsatisfiable'],
    ['bytes 0-99', 'unsatisfiable'],
    ['bytes=0-99-', 'unsatisfiable'],
    ['bytes=1.5-2', 'unsatisfiable'],
    ['bytes=--5', 'unsatisfiable'],
    ['items=0-99', 'unsatisfiable'],
    ['bytes=', 'unsatisfiable'],
  ]
  it.each(cases)('%j -> %j', (header, expected) => {
    expect(parseRange(header, SIZE)).toEqual(expected)
  })

  const empty: Array<[string, 'unsatisfiable']> = [['bytes=0-', 'unsatisfiable'], ['bytes=-10', 'unsatisfiable'], ['bytes=0-0', 'unsatisfiable']]
  it.each(empty)('an empty artifact: %j -> %j', (header, expected) => {
    expect(parseRange(header, 0)).toBe(expected)
  })
})
