import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, type Cli} from '../helpers/e2e-expect.js'

/**
 * Bad input to the devices commands: each case checks the exit code, the error code in the JSON
 * envelope, what the message says, and that nothing was written.
 */
const ID_RULE = '^[a-z0-9][a-z0-9_-]{0,63}$'

describe('devices: bad input is refused and writes nothing', () => {
  let db: TestDatabase
  let cli: Cli
  let snapshot: string

  /** Every row as it is stored, to compare before and after a refused command. */
  const table = async () => JSON.stringify((await db.pool.query('SELECT * FROM devices ORDER BY device_id')).rows)
  const expectUnchanged = async () => expect(await table()).toBe(snapshot)

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    const r = await cli(['devices', 'register', 'keep-1', '--type', 'sensor', '--label', 'site=berlin', '--firmware', '1.0.0'])
    expect(r.code, describeRun(r)).toBe(0)
    snapshot = await table()
  })
  afterAll(async () => db.drop())

  it.each([
    ['Bad/Id', ['Bad/Id']],
    ['-x (after --)', ['--', '-x']],
    ['a 65-character id', ['a'.repeat(65)]],
  ])('register with invalid id %s → 4 naming the rule', async (_name, idArgs) => {
    const err = expectJsonError(await cli(['devices', 'register', '--type', 'sensor', '--json', ...idArgs]), 4, 'E_DEVICE_ID')
    expect(err.message).toContain(ID_RULE)
    expect(err.message).toContain(JSON.stringify(idArgs.at(-1)))
    await expectUnchanged()
  })

  it('-x without -- is read as an unknown flag: usage error 2', async () => {
    const err = expectJsonError(await cli(['devices', 'register', '-x', '--type', 'sensor', '--json']), 2, 'E_USAGE')
    expect(err.message).toMatch(/-x/)
    await expectUnchanged()
  })

  it('a 64-character id is the longest accepted (the boundary of the rule)', async () => {
    const id = 'b'.repeat(64)
    expect(expectOk(await cli(['devices', 'register', id, '--type', 'sensor', '--json'])).device_id).toBe(id)
    await db.pool.query('DELETE FROM devices WHERE device_id = $1', [id])
    await expectUnchanged()
  })

  it('duplicate id → 5 and the existing device is untouched', async () => {
    const r = await cli(['devices', 'register', 'keep-1', '--type', 'other', '--label', 'site=paris', '--json'])
    const err = expectJsonError(r, 5, 'E_DEVICE_EXISTS')
    expect(err.message).toContain('"keep-1" already exists')
    expect(err.hint).toMatch(/devices update keep-1/)
    await expectUnchanged()
  })

  it.each([
    ['get', ['devices', 'get', 'ghost']],
    ['update', ['devices', 'update', 'ghost', '--label', 'a=b']],
    ['deprovision', ['devices', 'deprovision', 'ghost', '--yes']],
  ])('unknown device: %s → 3', async (_verb, args) => {
    const err = expectJsonError(await cli([...args, '--json']), 3, 'E_DEVICE_NOT_FOUND')
    expect(err.message).toContain('"ghost" not found')
    if (args[1] === 'get') expectPlainError(await cli(args), 3)
    await expectUnchanged()
  })

  it('malformed selector → 4 with a caret under the offending character', async () => {
    const selector = 'site=ber lin'
    const err = expectJsonError(await cli(['devices', 'list', '--selector', selector, '--json']), 4, 'E_SELECTOR')
    expect(err.message).toMatch(/at character 10\b/)
    expect(err.data).toMatchObject({position: 10, selector})
    const plain = await cli(['devices', 'list', '--selector', selector])
    expectPlainError(plain, 4)
    const lines = plain.stderr.split('\n')
    const shown = lines.findIndex((l) => l.trimStart() === selector)
    expect(shown, plain.stderr).toBeGreaterThan(0)
    const caret = lines[shown + 1]!
    expect(caret.trim()).toBe('^')
    expect(caret.indexOf('^')).toBe(lines[shown]!.indexOf('lin'))
  })

  it.each([
    ['--label novalue', ['--label', 'novalue'], 'E_KEY_VALUE', /--label "novalue" is not of the form key=value/],
    ['--meta =x', ['--meta', '=x'], 'E_KEY_VALUE', /--meta "=x" is not of the form key=value/],
    ['--firmware 1.2', ['--firmware', '1.2'], 'E_FIRMWARE_VERSION', /invalid firmware version "1\.2"/],
    ['--owner -3', ['--owner', '-3'], 'E_OWNER', /invalid owner "-3"/],
    ['--label with a bad key', ['--label', 'bad key=x'], 'E_LABEL_KEY', /invalid label key "bad key"/],
  ])('register %s → 4, nothing registered', async (_name, flags, code, message) => {
    const err = expectJsonError(await cli(['devices', 'register', 'new-1', '--type', 'sensor', ...flags, '--json']), 4, code)
    expect(err.message).toMatch(message)
    await expectUnchanged()
  })

  it('update with a bad value → 4 and the device keeps its row_version', async () => {
    expectJsonError(await cli(['devices', 'update', 'keep-1', '--firmware', '1.2', '--json']), 4, 'E_FIRMWARE_VERSION')
    expectJsonError(await cli(['devices', 'update', 'keep-1', '--label', 'novalue', '--json']), 4, 'E_KEY_VALUE')
    await expectUnchanged()
  })

  it('unknown flag → 2; missing --type → 2', async () => {
    const unknown = expectJsonError(await cli(['devices', 'register', 'new-2', '--type', 'sensor', '--colour', 'red', '--json']), 2, 'E_USAGE')
    expect(unknown.message).toMatch(/--colour/)
    const missing = await cli(['devices', 'register', 'new-2'])
    expectPlainError(missing, 2)
    expect(missing.stderr).toMatch(/Missing required flag type/)
    await expectUnchanged()
  })

  it.each([
    ['IOTCTL_OUTPUT=json', {IOTCTL_OUTPUT: 'json'}],
    ['IOTCTL_JSON=1', {IOTCTL_JSON: '1'}],
  ])('machine output asked for through %s: a usage error is still a JSON envelope on stdout', async (_name, env) => {
    const ok = await cli(['devices', 'get', 'keep-1'], {env})
    expect(expectOk(ok).device_id).toBe('keep-1')
    const err = expectJsonError(await cli(['devices', 'register', 'new-3'], {env}), 2, 'E_USAGE')
    expect(err.message).toMatch(/Missing required flag type/)
    await expectUnchanged()
  })

  it('--limit 0 → 4', async () => {
    const err = expectJsonError(await cli(['devices', 'list', '--limit', '0', '--json']), 4, 'E_LIMIT')
    expect(err.message).toMatch(/--limit must be between 1 and/)
  })

  it('a garbage --after cursor → 4', async () => {
    const err = expectJsonError(await cli(['devices', 'list', '--after', 'not a cursor!', '--json']), 4, 'E_CURSOR')
    expect(err.message).toContain('invalid cursor')
    expect(err.hint).toMatch(/next/)
  })

  it('--debug adds the stack trace that is otherwise hidden', async () => {
    const r = await cli(['devices', 'get', 'ghost', '--debug'])
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^Error: device "ghost" not found\nNext: /)
    expect(r.stderr).toMatch(/\n\s+at /)
  })

  it('the registry after all of the above: only the device that was there', async () => {
    const page = expectOk<{items: Array<{device_id: string}>}>(await cli(['devices', 'list', '--json']))
    expect(page.items.map((d) => d.device_id)).toEqual(['keep-1'])
  })
})

describe('devices: bad input is reported before a database is needed', () => {
  // register, update and import already validate before connecting; these should too.
  it.each([
    ['list --selector', ['devices', 'list', '--selector', 'site=ber lin'], 'E_SELECTOR'],
    ['list --limit 0', ['devices', 'list', '--limit', '0'], 'E_LIMIT'],
    ['get Bad/Id', ['devices', 'get', 'Bad/Id'], 'E_DEVICE_ID'],
  ])('%s with no database configured → 4, not 6', async (_name, args, code) => {
    const {cli} = await boundCli()
    expectJsonError(await cli([...args, '--json']), 4, code)
  })
})
