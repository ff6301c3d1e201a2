import {readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse as parseYaml} from 'yaml'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError} from '../helpers/e2e-expect.js'

const PROD_DB = 'postgres://u:secret@h:5432/db'
/** Nothing listens on port 1: connections are refused at once. */
const UNREACHABLE = 'postgres://u:p@127.0.0.1:1/x'

describe('config contexts', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => db.drop())

  it('set-context --use writes $IOTCTL_HOME/config.yaml with mode 0600; view masks the password', async () => {
    const {cli, home} = await boundCli()
    const set = await cli(['config', 'set-context', 'prod', '--database-url', PROD_DB, '--broker-url', 'mqtts://b:8883', '--use', '--json'])
    expect(expectOk(set)).toEqual({name: 'prod', created: true})
    const file = join(home, 'config.yaml')
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(parseYaml(await readFile(file, 'utf8'))).toEqual({
      'current-context': 'prod',
      contexts: {prod: {'database-url': PROD_DB, 'broker-url': 'mqtts://b:8883'}},
    })

    const view = await cli(['config', 'view', '-o', 'json'])
    expect(view.stdout).not.toContain('secret')
    expect(view.stderr).not.toContain('secret')
    const result = expectOk(view)
    expect(result.current_context).toBe('prod')
    expect(result.contexts).toEqual([{name: 'prod', current: true, database_url: 'postgres://u:***@h:5432/db', broker_url: 'mqtts://b:8883'}])
    expect(result.effective).toMatchObject({database_url: 'postgres://u:***@h:5432/db', database_source: 'context:prod'})

    const table = await cli(['config', 'view'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/^CURRENT\s+NAME\s+DATABASE\s+BROKER\n\*\s+prod\s+postgres:\/\/u:\*\*\*@h:5432\/db\s+mqtts:\/\/b:8883\n$/)
    expect(table.stdout + table.stderr).not.toContain('secret')
  })

  it('set-context stores only what is typed, not IOTCTL_DATABASE_URL from the environment', async () => {
    const {cli, home} = await boundCli(db.url)
    expect((await cli(['config', 'set-context', 'edge', '--broker-url', 'mqtt://edge:1883'])).code).toBe(0)
    expect(parseYaml(await readFile(join(home, 'config.yaml'), 'utf8')).contexts).toEqual({edge: {'broker-url': 'mqtt://edge:1883'}})
  })

  it('set-context with a URL of the wrong scheme → 4, file not written', async () => {
    const {cli, home} = await boundCli()
    const err = expectJsonError(await cli(['config', 'set-context', 'bad', '--database-url', 'mysql://x@h/db', '--json']), 4, 'E_URL')
    expect(err.message).toMatch(/postgres/)
    await expect(stat(join(home, 'config.yaml'))).rejects.toMatchObject({code: 'ENOENT'})
  })

  it('use-context of an unknown name → 3 naming the known contexts; the current one stays', async () => {
    const {cli} = await boundCli()
    for (const name of ['alpha', 'beta']) expect((await cli(['config', 'set-context', name, '--database-url', PROD_DB])).code).toBe(0)
    expect(expectOk(await cli(['config', 'view', '--json'])).current_context).toBe(null) // set-context alone never switches
    expect((await cli(['config', 'use-context', 'alpha'])).code).toBe(0)
    const err = expectJsonError(await cli(['config', 'use-context', 'gamma', '--json']), 3, 'E_CONTEXT_NOT_FOUND')
    expect(err.message).toContain('"gamma"')
    expect(err.hint).toMatch(/known contexts: alpha, beta/)
    expect(expectOk(await cli(['config', 'view', '--json'])).current_context).toBe('alpha')
    expect(expectOk(await cli(['config', 'use-context', 'beta', '--json']))).toEqual({current_context: 'beta'})
    expect(expectOk(await cli(['config', 'view', '--json'])).current_context).toBe('beta')
  })

  describe('precedence: flag > env > context > dev stack', () => {
    let cli: Awaited<ReturnType<typeof boundCli>>['cli']
    beforeAll(async () => {
      ;({cli} = await boundCli()) // no IOTCTL_DATABASE_URL
      expect((await cli(['config', 'set-context', 'good', '--database-url', db.url])).code).toBe(0)
      const r = await cli(['config', 'set-context', 'broken', '--database-url', UNREACHABLE, '--use'])
      expect(r.code, describeRun(r)).toBe(0)
    })

    it('the current context is used when no flag or env is given: unreachable → 6, URL masked', async () => {
      const r = await cli(['devices', 'list', '--json'])
      const err = expectJsonError(r, 6, 'E_DB_UNAVAILABLE')
      expect(err.message).toContain('postgres://u:***@127.0.0.1:1/x')
      expect(r.stdout + r.stderr).not.toContain('u:p@')
      expect(err.hint).toContain('iotctl dev up')
      const plain = await cli(['devices', 'list'])
      expectPlainError(plain, 6)
      expect(plain.stderr).toMatch(/\nNext: .*iotctl dev up/)
      expect(plain.stderr).not.toContain('u:p@')
    })

    it('--database-url (flag) overrides the context', async () => {
      expect(expectOk(await cli(['devices', 'list', '--database-url', db.url, '--json'])).items).toEqual([])
      const view = expectOk(await cli(['config', 'view', '--database-url', db.url, '--json']))
      expect(view.effective.database_source).toBe('flag')
    })

    it('IOTCTL_DATABASE_URL overrides the context, and the flag overrides the variable', async () => {
      const r = await cli(['devices', 'list', '--json'], {env: {IOTCTL_DATABASE_URL: db.url}})
      expect(expectOk(r).items).toEqual([])
      const flagWins = await cli(['devices', 'list', '--database-url', db.url, '--json'], {env: {IOTCTL_DATABASE_URL: UNREACHABLE}})
      expect(expectOk(flagWins).items).toEqual([])
    })

    it('--context and IOTCTL_CONTEXT select another context', async () => {
      expect(expectOk(await cli(['devices', 'list', '--context', 'good', '--json'])).items).toEqual([])
      expect(expectOk(await cli(['devices', 'list', '--json'], {env: {IOTCTL_CONTEXT: 'good'}})).items).toEqual([])
      expect(expectOk(await cli(['config', 'view', '--json'], {env: {IOTCTL_CONTEXT: 'good'}})).effective.database_source).toBe('context:good')
      expectJsonError(await cli(['devices', 'list', '--context', 'broken', '--json'], {env: {IOTCTL_CONTEXT: 'good'}}), 6, 'E_DB_UNAVAILABLE')
      const err = expectJsonError(await cli(['devices', 'list', '--context', 'nope', '--json']), 3, 'E_CONTEXT_NOT_FOUND')
      expect(err.hint).toMatch(/broken/)
    })
  })

  it('an unreachable --database-url → 6 with a Next: line pointing at `iotctl dev up`', async () => {
    const {cli} = await boundCli()
    const r = await cli(['devices', 'get', 'dev-1', '--database-url', UNREACHABLE])
    expectPlainError(r, 6)
    expect(r.stderr).toMatch(/^Error: cannot reach PostgreSQL at postgres:\/\/u:\*\*\*@127\.0\.0\.1:1\/x/)
    expect(r.stderr).toMatch(/\nNext: .*`iotctl dev up --detach`/)
    expect(r.stderr).not.toContain('u:p@')
  })

  it('no database at all (empty home, no env, no stack) → 6', async () => {
    const {cli} = await boundCli()
    const err = expectJsonError(await cli(['devices', 'list', '--json']), 6, 'E_NO_DATABASE')
    expect(err.message).toContain('no database configured')
    expect(err.hint).toContain('iotctl dev up')
    expectPlainError(await cli(['devices', 'register', 'dev-1', '--type', 'sensor']), 6)
  })
})
