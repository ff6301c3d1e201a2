import {spawn} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse as parseYaml} from 'yaml'
import {getShadow, updateShadow, type ShadowDocument} from '../../src/lib/shadow/index.js'
import {BIN, type CliResult} from '../helpers/cli.js'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, mapLimit, type Cli} from '../helpers/e2e-expect.js'
import {cleanup, tempDir} from '../helpers/pki-fixtures.js'

/** Who the CLI records in shadow_history: `cli:<login>` (or `cli:unknown` without a passwd entry). */
const LOGIN = (() => {
  try {
    return userInfo().username
  } catch {
    return 'unknown'
  }
})()

interface SetResult {
  device_id: string
  version: number
  desired: Record<string, unknown>
  delta: Record<string, unknown> | null
}
interface HistoryEntry {
  version: number
  actor: string
  at: string
  change: {state: Record<string, unknown>}
}
interface DriftEntry {
  device_id: string
  version: number
  pending_since: string
  delta: Record<string, unknown>
}

/**
 * A borderless table (header line, then rows) as records keyed by header. Cells are cut at the
 * columns where the headers start, so empty cells stay empty instead of shifting the row.
 */
function parseTable(stdout: string): Array<Record<string, string>> {
  const [head, ...lines] = stdout.replace(/\n$/, '').split('\n')
  if (!head) return []
  const starts = [...head.matchAll(/\S+/g)].map((m) => ({name: m[0], at: m.index}))
  return lines.map((line) => Object.fromEntries(starts.map((s, i) => [s.name, line.slice(s.at, starts[i + 1]?.at ?? line.length).trim()])))
}

/** Register devices straight in the registry (the devices commands have their own suite). */
async function addDevices(db: TestDatabase, ids: string[], labels: Record<string, string> = {}): Promise<void> {
  await db.pool.query(`INSERT INTO devices (device_id, device_type, labels) SELECT unnest($1::text[]), 'thermostat', $2::jsonb`, [ids, labels])
}

/** Every byte of the shadow tables (each whole row as text), to prove a refused change changed nothing. */
async function shadowTablesDigest(db: TestDatabase): Promise<{shadows: string | null; history: string | null; rows: number}> {
  const {rows} = await db.pool.query<{shadows: string | null; history: string | null; rows: string}>(`SELECT
    (SELECT md5(string_agg(s::text, E'\\n' ORDER BY s.device_id)) FROM shadows s) AS shadows,
    (SELECT md5(string_agg(h::text, E'\\n' ORDER BY h.device_id, h.version)) FROM shadow_history h) AS history,
    (SELECT count(*) FROM shadows) + (SELECT count(*) FROM shadow_history) AS rows`)
  return {shadows: rows[0]!.shadows, history: rows[0]!.history, rows: Number(rows[0]!.rows)}
}

/** What a device does on `shadow/update` (docs/PROTOCOL.md): report state, recorded as actor `device`. */
async function deviceReports(db: TestDatabase, id: string, reported: Record<string, unknown>): Promise<void> {
  const outcome = await updateShadow(db, id, {state: {reported: reported as never}}, {actor: 'device'})
  expect(outcome.ok, JSON.stringify(outcome)).toBe(true)
}

describe('iotctl shadow (spawned CLI, real PostgreSQL)', () => {
  let db: TestDatabase
  let cli: Cli
  let env: Record<string, string | undefined>
  let dir: string

  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli, env} = await boundCli(db.url))
    dir = await tempDir('shadow-e2e')
    await addDevices(db, ['th-1', 'th-file', 'th-new', 'bad-1', 'bad-2', 'race-1', 'watch-1', 'hist-1'])
    await addDevices(db, ['drift-1', 'drift-2'], {site: 'drift'})
    await addDevices(db, ['grp-1', 'grp-2', 'grp-3'], {site: 'grp'})
    await addDevices(db, ['grp-other'], {site: 'elsewhere'})
  })
  afterAll(async () => {
    await db?.drop()
    await cleanup(dir)
  })

  describe('set and get', () => {
    it('set types its values: numbers, strings, booleans, arrays, quoted strings, a.b=1 nests', async () => {
      const r = expectOk<SetResult>(await cli(['shadow', 'set', 'th-1', 'target_temperature=72', 'mode=cooling', 'schedule.night=18', 'schedule.day=21.5',
        'eco=true', 'zones=[1,2]', 'label="72"', '-o', 'json']))
      const desired = {target_temperature: 72, mode: 'cooling', schedule: {night: 18, day: 21.5}, eco: true, zones: [1, 2], label: '72'}
      expect(r).toEqual({device_id: 'th-1', version: 1, desired, delta: desired})
      const doc = await getShadow(db, 'th-1')
      expect(doc.state.desired).toEqual(desired)
      expect(typeof (doc.state.desired as {target_temperature: unknown}).target_temperature).toBe('number')
    })

    it('key=null deletes a key (and a nested one); the table shows the remaining delta', async () => {
      expectOk(await cli(['shadow', 'set', 'th-1', 'label=null', 'schedule.day=null', '-o', 'json']))
      const table = await cli(['shadow', 'set', 'th-1', 'eco=null'])
      expect(table.code, describeRun(table)).toBe(0)
      const rows = parseTable(table.stdout)
      expect(rows).toHaveLength(1)
      expect(rows[0]).toMatchObject({DEVICE: 'th-1', VERSION: '3'})
      expect(JSON.parse(rows[0]!.DELTA!)).toEqual({target_temperature: 72, mode: 'cooling', schedule: {night: 18}, zones: [1, 2]})
      expect(table.stderr).toBe('')
      expect((await getShadow(db, 'th-1')).state.desired).toEqual({target_temperature: 72, mode: 'cooling', schedule: {night: 18}, zones: [1, 2]})
    })

    it('get -o json is the document: desired, reported, delta, metadata, version', async () => {
      await deviceReports(db, 'th-1', {target_temperature: 70, schedule: {night: 18}, humidity: 40})
      const doc = expectOk<ShadowDocument & {device_id: string}>(await cli(['shadow', 'get', 'th-1', '-o', 'json']))
      expect(doc).toMatchObject({
        device_id: 'th-1',
        version: 4,
        state: {
          desired: {target_temperature: 72, mode: 'cooling', schedule: {night: 18}, zones: [1, 2]},
          reported: {target_temperature: 70, schedule: {night: 18}, humidity: 40},
          delta: {target_temperature: 72, mode: 'cooling', zones: [1, 2]},
        },
      })
      expect(doc.metadata.desired).toMatchObject({target_temperature: {timestamp: expect.any(Number)}, schedule: {night: {timestamp: expect.any(Number)}}})
      expect(doc.metadata.reported).toMatchObject({humidity: {timestamp: expect.any(Number)}})
      expect(doc.timestamp).toBeGreaterThan(1_700_000_000)
    })

    it('get as a table: one row per key with desired, reported and delta', async () => {
      const r = await cli(['shadow', 'get', 'th-1'])
      expect(r.code, describeRun(r)).toBe(0)
      expect(r.stdout.split('\n')[0]!.trim().split(/\s+/)).toEqual(['KEY', 'DESIRED', 'REPORTED', 'DELTA'])
      expect(parseTable(r.stdout)).toEqual([
        {KEY: 'humidity', DESIRED: '', REPORTED: '40', DELTA: ''},
        {KEY: 'mode', DESIRED: '"cooling"', REPORTED: '', DELTA: '"cooling"'},
        {KEY: 'schedule.night', DESIRED: '18', REPORTED: '18', DELTA: ''},
        {KEY: 'target_temperature', DESIRED: '72', REPORTED: '70', DELTA: '72'},
        {KEY: 'zones', DESIRED: '[1,2]', REPORTED: '', DELTA: '[1,2]'},
      ])
      expect(r.stderr).toBe('')
    })

    it('get -o yaml is the document; -o name names the shadow once (one resource, not one line per key)', async () => {
      const yaml = await cli(['shadow', 'get', 'th-1', '-o', 'yaml'])
      expect(yaml.code, describeRun(yaml)).toBe(0)
      expect(parseYaml(yaml.stdout)).toMatchObject({device_id: 'th-1', version: 4, state: {delta: {target_temperature: 72}}})
      const name = await cli(['shadow', 'get', 'th-1', '-o', 'name'])
      expect(name.code, describeRun(name)).toBe(0)
      expect(name.stdout).toBe('shadow/th-1\n')
      const empty = await cli(['shadow', 'get', 'th-new', '-o', 'name'])
      expect(empty.stdout).toBe('shadow/th-new\n')
    })

    it('get of a device that never had a shadow is the empty document at version 0', async () => {
      const doc = expectOk<ShadowDocument>(await cli(['shadow', 'get', 'th-new', '--json']))
      expect(doc).toMatchObject({device_id: 'th-new', version: 0, state: {desired: {}, reported: {}}})
      expect(doc.state.delta).toBeUndefined()
      const table = await cli(['shadow', 'get', 'th-new'])
      expect(table.code, describeRun(table)).toBe(0)
    })

    it('--file desired.json with --expected-version, and --file - from stdin', async () => {
      const file = join(dir, 'desired.json')
      await writeFile(file, JSON.stringify({target_temperature: 68, fan: {speed: 'auto', levels: [1, 2, 3]}}))
      const first = expectOk<SetResult>(await cli(['shadow', 'set', 'th-file', '--file', file, '--expected-version', '0', '-o', 'json']))
      expect(first).toEqual({device_id: 'th-file', version: 1, desired: {target_temperature: 68, fan: {speed: 'auto', levels: [1, 2, 3]}},
        delta: {target_temperature: 68, fan: {speed: 'auto', levels: [1, 2, 3]}}})
      const second = expectOk<SetResult>(await cli(['shadow', 'set', 'th-file', '-f', '-', '--expected-version', '1', '-o', 'json'], {input: '{"fan": {"speed": "high"}, "target_temperature": null}'}))
      expect(second).toMatchObject({version: 2, desired: {fan: {speed: 'high', levels: [1, 2, 3]}}})
      expect(second.desired).not.toHaveProperty('target_temperature')
    })

    it('key=value pairs and --file together, or nothing to set, are usage errors (exit 2)', async () => {
      const file = join(dir, 'both.json')
      await writeFile(file, '{"a": 1}')
      expectJsonError(await cli(['shadow', 'set', 'th-file', 'b=2', '--file', file, '-o', 'json']), 2, 'E_USAGE')
      expectJsonError(await cli(['shadow', 'set', 'th-file', '-o', 'json']), 2, 'E_USAGE')
      expectJsonError(await cli(['shadow', 'set', 'mode=cooling', '-o', 'json']), 2, 'E_USAGE')
    })
  })

  describe('refused input: exit 4 with the path, exit 5 with the current version, exit 3 for unknown devices', () => {
    beforeAll(async () => {
      expectOk(await cli(['shadow', 'set', 'bad-1', 'x=1', 'nested.a=1', '-o', 'json']))
      await deviceReports(db, 'bad-1', {x: 1})
    })

    const deep = {a: {b: {c: {d: {e: {f: {g: 1}}}}}}}
    const cases: Array<{name: string; args: () => Promise<string[]>; input?: string; code: string; says: Array<string | RegExp>}> = [
      {name: 'a file that is not JSON', args: async () => ['--file', await fileWith('not-json.json', '{"mode": cooling}')],
        code: 'E_SHADOW_FILE', says: ['not-json.json', /not JSON/]},
      {name: 'stdin that is not JSON', args: async () => ['--file', '-'], input: 'mode=cooling', code: 'E_SHADOW_FILE', says: [/not JSON/]},
      {name: 'a file holding an array', args: async () => ['--file', await fileWith('array.json', '[1, 2]')], code: 'E_SHADOW_FILE', says: ['array.json', /JSON object/]},
      {name: 'a document over 8 KiB (file)', args: async () => ['--file', await fileWith('big.json', JSON.stringify({blob: 'x'.repeat(9000)}))],
        code: 'E_SHADOW_TOO_LARGE', says: [/^state: /, /over the limit of 8192/]},
      {name: 'a document over 8 KiB (key=value)', args: async () => [`blob=${'y'.repeat(8200)}`], code: 'E_SHADOW_TOO_LARGE', says: [/^state: /, /8192/]},
      {name: 'nesting deeper than 6 levels (file)', args: async () => ['--file', await fileWith('deep.json', JSON.stringify(deep))],
        code: 'E_SHADOW_INVALID', says: ['state.desired.a.b.c.d.e.f', /deeper than 6/]},
      {name: 'nesting deeper than 6 levels (a.b.c.d.e.f.g=1)', args: async () => ['a.b.c.d.e.f.g=1'], code: 'E_SHADOW_INVALID', says: ['state.desired.a.b.c.d.e.f', /deeper than 6/]},
      {name: 'an invalid key name (key=value)', args: async () => ['mode=cooling', 'bad key=1'], code: 'E_SHADOW_INVALID', says: ['"bad key"']},
      {name: 'an invalid nested key name (key=value)', args: async () => ['schedule.$night=18'], code: 'E_SHADOW_INVALID', says: ['schedule.$night']},
      {name: 'an invalid key name (file, nested)', args: async () => ['--file', await fileWith('key.json', '{"ok": {"bad!": 1}}')], code: 'E_SHADOW_INVALID', says: ['state.desired.ok.bad!']},
      // `__proto__` would reach Object.prototype when the patch is built or merged (prototype pollution).
      {name: 'the key __proto__ (key=value)', args: async () => ['__proto__.polluted=1'], code: 'E_SHADOW_INVALID', says: ['"__proto__"']},
      {name: 'the key __proto__ (file)', args: async () => ['--file', await fileWith('proto.json', '{"__proto__": {"polluted": 1}}')], code: 'E_SHADOW_INVALID', says: ['state.desired.__proto__']},
      {name: 'an invalid key inside an array (file)', args: async () => ['--file', await fileWith('arr-key.json', '{"list": [{"a b": 1}]}')], code: 'E_SHADOW_INVALID', says: ['state.desired.list[0].a b']},
    ]
    async function fileWith(name: string, text: string): Promise<string> {
      const path = join(dir, name)
      await writeFile(path, text)
      return path
    }

    it.each(cases.map((c) => [c.name, c] as const))('%s is exit 4 with the path, and changes nothing', async (_name, c) => {
      for (const id of ['bad-1', 'bad-2']) { // bad-2 never had a shadow: not even an empty row may appear
        const before = await shadowTablesDigest(db)
        const args = await c.args()
        const error = expectJsonError(await cli(['shadow', 'set', id, ...args, '-o', 'json'], {input: c.input}), 4, c.code)
        for (const s of c.says) expect(error.message).toMatch(typeof s === 'string' ? new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : s)
        expect(error.hint).toBeTruthy()
        expect(await shadowTablesDigest(db)).toEqual(before)
      }
    })

    it('without -o json the same refusal is only `Error:` and `Next:` on stderr, no stack trace', async () => {
      const r = await cli(['shadow', 'set', 'bad-1', 'a.b.c.d.e.f.g=1'])
      expectPlainError(r, 4)
      expect(r.stderr).toMatch(/^Error: state\.desired\.a\.b\.c\.d\.e\.f: nested deeper than 6 levels\nNext: .+\n$/)
      const file = await fileWith('plain-bad.json', '{oops')
      const f = await cli(['shadow', 'set', 'bad-1', '--file', file])
      expectPlainError(f, 4)
      expect(f.stderr).toContain(file)
    })

    it('a version conflict is exit 5 naming the current version (message and error.data), and changes nothing', async () => {
      const before = await shadowTablesDigest(db)
      const error = expectJsonError(await cli(['shadow', 'set', 'bad-1', 'x=2', '--expected-version', '0', '-o', 'json']), 5, 'E_SHADOW_VERSION')
      expect(error.data).toEqual({current_version: 2})
      expect(error.message).toMatch(/at version 2\b/)
      expect(error.hint).toContain('--expected-version 2')
      expect(await shadowTablesDigest(db)).toEqual(before)
      const plain = await cli(['shadow', 'set', 'bad-1', 'x=2', '--expected-version', '7'])
      expectPlainError(plain, 5)
      expect(plain.stderr).toMatch(/version 2/)
      expect(await shadowTablesDigest(db)).toEqual(before)
      // The version it names is the one that works.
      expect(expectOk<SetResult>(await cli(['shadow', 'set', 'bad-1', 'x=2', '--expected-version', '2', '-o', 'json'])).version).toBe(3)
    })

    it('--expected-version with --selector is a usage error (exit 2)', async () => {
      expectJsonError(await cli(['shadow', 'set', '--selector', 'site=grp', 'x=1', '--expected-version', '1', '-o', 'json']), 2, 'E_USAGE')
    })

    it.each([
      ['get', ['shadow', 'get', 'ghost']],
      ['set', ['shadow', 'set', 'ghost', 'mode=cooling']],
      ['history', ['shadow', 'history', 'ghost']],
      ['watch', ['shadow', 'watch', 'ghost', '--max-events', '1']],
    ])('%s of an unknown device is exit 3', async (_name, args) => {
      const before = await shadowTablesDigest(db)
      const error = expectJsonError(await cli([...args, '-o', 'json']), 3, 'E_DEVICE_NOT_FOUND')
      expect(error.message).toContain('ghost')
      const plain = await cli(args)
      expectPlainError(plain, 3)
      expect(await shadowTablesDigest(db)).toEqual(before)
    })

    it('an id that cannot be a device id is exit 4', async () => {
      expectJsonError(await cli(['shadow', 'get', 'Not/A/Device', '-o', 'json']), 4, 'E_DEVICE_ID')
      expectJsonError(await cli(['shadow', 'set', 'Not+Device', 'x=1', '-o', 'json']), 4, 'E_DEVICE_ID')
    })
  })

  it('Two concurrent writers with the same expected version: exactly one wins, the other gets exit 5', async () => {
    expectOk(await cli(['shadow', 'set', 'race-1', 'round=0', '-o', 'json']))
    for (let round = 1; round <= 4; round++) {
      const version = expectOk<ShadowDocument>(await cli(['shadow', 'get', 'race-1', '-o', 'json'])).version
      const writers = ['left', 'right']
      const results = await Promise.all(writers.map((w) => cli(['shadow', 'set', 'race-1', `round=${round}`, `writer=${w}`, '--expected-version', String(version), '-o', 'json'])))
      const codes = results.map((r) => r.code)
      expect([...codes].sort(), results.map(describeRun).join('\n')).toEqual([0, 5])
      const winner = writers[codes.indexOf(0)]!
      const loser = results[codes.indexOf(5)]!
      expect(expectJsonError(loser, 5, 'E_SHADOW_VERSION').data).toEqual({current_version: version + 1})
      expect(expectOk<SetResult>(results[codes.indexOf(0)]!).version).toBe(version + 1)
      const doc = await getShadow(db, 'race-1')
      expect(doc.version).toBe(version + 1)
      expect(doc.state.desired).toEqual({round, writer: winner})
      const {rows} = await db.pool.query('SELECT version FROM shadow_history WHERE device_id = $1 AND version > $2', ['race-1', version])
      expect(rows).toEqual([{version: String(version + 1)}])
    }
  }, 120_000)

  describe('watch', () => {
    it('`watch ID --max-events 3 -o json` prints the current document, then two changes made meanwhile by `shadow set`', async () => {
      expectOk(await cli(['shadow', 'set', 'watch-1', 'mode=off', '-o', 'json']))
      const watch = spawnCli(env, ['shadow', 'watch', 'watch-1', '--max-events', '3', '-o', 'json'])
      try {
        await expect.poll(() => watch.lines().length, {timeout: 30_000}).toBe(1)
        expectOk(await cli(['shadow', 'set', 'watch-1', 'mode=heating', '-o', 'json']))
        await expect.poll(() => watch.lines().length, {timeout: 15_000}).toBe(2)
        expectOk(await cli(['shadow', 'set', 'watch-1', 'target_temperature=21', '-o', 'json']))
        const result = await watch.exit(15_000)
        expect(result.code, describeRun(result)).toBe(0)
        const docs = watch.lines().map((l) => JSON.parse(l) as ShadowDocument & {device_id: string})
        expect(docs.map((d) => d.version)).toEqual([1, 2, 3])
        expect(docs.every((d) => d.device_id === 'watch-1')).toBe(true)
        expect(docs.map((d) => d.state.desired)).toEqual([{mode: 'off'}, {mode: 'heating'}, {mode: 'heating', target_temperature: 21}])
        expect(docs[2]!.state.delta).toEqual({mode: 'heating', target_temperature: 21})
        expect(result.stdout.endsWith('\n')).toBe(true)
        expect(result.stderr).toBe('')
      } finally {
        watch.kill()
      }
    }, 90_000)

    it('every committed version appears exactly once, in order, even when the watcher falls behind', async () => {
      // "Then every committed change … one JSON line per version" (the command's description).
      const id = 'watch-2'
      await addDevices(db, [id])
      await deviceReports(db, id, {n: 0})
      const watch = spawnCli(env, ['shadow', 'watch', id, '--max-events', '5', '-o', 'json'])
      try {
        await expect.poll(() => watch.lines().length, {timeout: 30_000}).toBe(1)
        await deviceReports(db, id, {n: 1})
        await expect.poll(() => watch.lines().length, {timeout: 15_000}).toBe(2) // listening now
        // The watcher is busy (here: stopped) while an operator and the device commit three versions.
        watch.child.kill('SIGSTOP')
        try {
          await updateShadow(db, id, {state: {desired: {n: 2}}}, {actor: 'cli:test'})
          await deviceReports(db, id, {n: 2})
          await updateShadow(db, id, {state: {desired: {mode: 'eco'}}}, {actor: 'cli:test'})
        } finally {
          watch.child.kill('SIGCONT')
        }
        const result = await watch.exit(10_000)
        const versions = watch.lines().map((l) => (JSON.parse(l) as ShadowDocument).version)
        expect(versions, 'versions printed by watch').toEqual([1, 2, 3, 4, 5])
        expect(result.code, describeRun(result)).toBe(0)
      } finally {
        watch.kill()
      }
    }, 90_000)

    it('without a TTY and without -o json it still writes JSON lines; --max-events 1 is just the current document', async () => {
      const r = await cli(['shadow', 'watch', 'watch-1', '--max-events', '1'])
      expect(r.code, describeRun(r)).toBe(0)
      const lines = r.stdout.trimEnd().split('\n')
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({device_id: 'watch-1', version: 3, state: {desired: {mode: 'heating', target_temperature: 21}}})
    })

    it('without --max-events it streams until interrupted (SIGINT), then exits cleanly', async () => {
      const id = 'watch-3'
      await addDevices(db, [id])
      expectOk(await cli(['shadow', 'set', id, 'mode=heating', 'target_temperature=21', '-o', 'json']))
      const watch = spawnCli(env, ['shadow', 'watch', id])
      try {
        await expect.poll(() => watch.lines().length, {timeout: 30_000}).toBe(1)
        await deviceReports(db, id, {mode: 'heating'})
        await expect.poll(() => watch.lines().length, {timeout: 15_000}).toBe(2)
        expect(JSON.parse(watch.lines()[1]!)).toMatchObject({version: 2, state: {reported: {mode: 'heating'}, delta: {target_temperature: 21}}})
        watch.child.kill('SIGINT')
        const result = await watch.exit(10_000)
        expect([0, 130], describeRun(result)).toContain(result.code)
        expect(result.stderr).not.toMatch(/\n\s+at /)
      } finally {
        watch.kill()
      }
    }, 90_000)
  })

  it('history shows every version newest first, with the actor (cli or device) and the change', async () => {
    expectOk(await cli(['shadow', 'set', 'hist-1', 'mode=cooling', 'target_temperature=72', '-o', 'json']))
    await deviceReports(db, 'hist-1', {mode: 'cooling'})
    expectOk(await cli(['shadow', 'set', 'hist-1', 'mode=null', '-o', 'json']))
    const entries = expectOk<HistoryEntry[]>(await cli(['shadow', 'history', 'hist-1', '-o', 'json']))
    expect(entries.map((e) => [e.version, e.actor])).toEqual([[3, `cli:${LOGIN}`], [2, 'device'], [1, `cli:${LOGIN}`]])
    expect(entries.map((e) => e.change)).toEqual([
      {state: {desired: {mode: null}}},
      {state: {reported: {mode: 'cooling'}}},
      {state: {desired: {mode: 'cooling', target_temperature: 72}}},
    ])
    expect(entries.every((e) => !Number.isNaN(Date.parse(e.at)))).toBe(true)
    const limited = expectOk<HistoryEntry[]>(await cli(['shadow', 'history', 'hist-1', '--limit', '1', '-o', 'json']))
    expect(limited.map((e) => e.version)).toEqual([3])
    const table = await cli(['shadow', 'history', 'hist-1'])
    expect(table.code, describeRun(table)).toBe(0)
    const rows = parseTable(table.stdout)
    expect(rows.map((r) => [r.VERSION, r.BY])).toEqual([['3', `cli:${LOGIN}`], ['2', 'device'], ['1', `cli:${LOGIN}`]])
    expect(JSON.parse(rows[1]!.CHANGE!)).toEqual({reported: {mode: 'cooling'}})
    const none = expectOk<HistoryEntry[]>(await cli(['shadow', 'history', 'th-new', '-o', 'json']))
    expect(none).toEqual([])
  })

  describe('set --selector: desired state for a group in one transaction', () => {
    it('counts matched / changed / unchanged; a rerun is all unchanged; other devices are untouched', async () => {
      const first = expectOk(await cli(['shadow', 'set', '--selector', 'site=grp', 'mode=eco', 'schedule.night=18', '-o', 'json']))
      expect(first).toEqual({matched: 3, changed: 3, unchanged: 0})
      const before = await shadowTablesDigest(db)
      const again = expectOk(await cli(['shadow', 'set', '--selector', 'site=grp', 'mode=eco', 'schedule.night=18', '-o', 'json']))
      expect(again).toEqual({matched: 3, changed: 0, unchanged: 3})
      expect(await shadowTablesDigest(db), 'an all-unchanged rerun writes nothing').toEqual(before)
      for (const id of ['grp-1', 'grp-2', 'grp-3']) {
        const doc = await getShadow(db, id)
        expect(doc).toMatchObject({version: 1, state: {desired: {mode: 'eco', schedule: {night: 18}}}})
      }
      expect((await getShadow(db, 'grp-other')).version).toBe(0)
      const {rows} = await db.pool.query(`SELECT DISTINCT actor FROM shadow_history WHERE device_id LIKE 'grp-%'`)
      expect(rows).toEqual([{actor: `selector:${LOGIN}`}])
    })

    it('a partly applied group counts only the devices that changed; the table has the three counts', async () => {
      expectOk(await cli(['shadow', 'set', 'grp-2', 'mode=boost', '-o', 'json']))
      const r = await cli(['shadow', 'set', '-l', 'site=grp', 'mode=eco'])
      expect(r.code, describeRun(r)).toBe(0)
      expect(parseTable(r.stdout)).toEqual([{MATCHED: '3', CHANGED: '1', UNCHANGED: '2'}])
      expect((await getShadow(db, 'grp-2')).state.desired).toEqual({mode: 'eco', schedule: {night: 18}})
      expect(expectOk(await cli(['shadow', 'set', '--selector', 'site=nowhere', 'mode=eco', '-o', 'json']))).toEqual({matched: 0, changed: 0, unchanged: 0})
      const before = await shadowTablesDigest(db)
      expectJsonError(await cli(['shadow', 'set', '--selector', 'site in (grp', 'mode=off', '-o', 'json']), 4, 'E_SELECTOR')
      expectJsonError(await cli(['shadow', 'drift', '--selector', 'site in (grp', '-o', 'json']), 4, 'E_SELECTOR')
      expect(await shadowTablesDigest(db)).toEqual(before)
    })

    it('one device over the size limit refuses the whole group (exit 4): no device changes', async () => {
      expectOk(await cli(['shadow', 'set', 'grp-3', `notes=${'n'.repeat(7000)}`, '-o', 'json']))
      const before = await shadowTablesDigest(db)
      const error = expectJsonError(await cli(['shadow', 'set', '--selector', 'site=grp', `extra=${'e'.repeat(1500)}`, '-o', 'json']), 4, 'E_SHADOW_TOO_LARGE')
      expect(error.message).toContain('grp-3')
      expect(await shadowTablesDigest(db)).toEqual(before)
      const bad = expectJsonError(await cli(['shadow', 'set', '--selector', 'site=grp', 'bad key=1', '-o', 'json']), 4, 'E_SHADOW_INVALID')
      expect(bad.message).toContain('bad key')
      expect(await shadowTablesDigest(db)).toEqual(before)
    })
  })

  describe('drift', () => {
    it('lists devices whose desired state is unmet (exit 1) until they report it (exit 0)', async () => {
      expect(expectOk(await cli(['shadow', 'set', '--selector', 'site=drift', 'target=20', 'mode=auto', '-o', 'json']))).toMatchObject({changed: 2})
      const listed = await cli(['shadow', 'drift', '--selector', 'site=drift', '--older-than', '0s', '-o', 'json'])
      expect(listed.code, describeRun(listed)).toBe(1)
      const entries = listed.json<DriftEntry[]>().result
      expect(entries.map((e) => e.device_id).sort()).toEqual(['drift-1', 'drift-2'])
      expect(entries[0]).toMatchObject({version: 1, delta: {target: 20, mode: 'auto'}})
      expect(Date.parse(entries[0]!.pending_since)).toBeLessThanOrEqual(Date.now())

      // Not unmet for an hour yet.
      const young = await cli(['shadow', 'drift', '--selector', 'site=drift', '--older-than', '1h', '-o', 'json'])
      expect(young.code, describeRun(young)).toBe(0)
      expect(young.json().result).toEqual([])

      // One device reports part of it: still drifting; then all of it.
      await deviceReports(db, 'drift-1', {target: 20})
      await deviceReports(db, 'drift-2', {target: 20, mode: 'auto'})
      const one = await cli(['shadow', 'drift', '--selector', 'site=drift', '--older-than', '0s', '-o', 'json'])
      expect(one.code, describeRun(one)).toBe(1)
      expect(one.json<DriftEntry[]>().result.map((e) => [e.device_id, e.delta])).toEqual([['drift-1', {mode: 'auto'}]])
      const table = await cli(['shadow', 'drift', '-l', 'site=drift', '--older-than', '0s'])
      expect(table.code, describeRun(table)).toBe(1)
      expect(parseTable(table.stdout)).toEqual([{DEVICE: 'drift-1', PENDING_SINCE: expect.any(String), VERSION: '2', DELTA: '{"mode":"auto"}'}])

      await deviceReports(db, 'drift-1', {mode: 'auto', extra: 'reported only'})
      const converged = await cli(['shadow', 'drift', '--selector', 'site=drift', '--older-than', '0s', '-o', 'json'])
      expect(converged.code, describeRun(converged)).toBe(0)
      expect(converged.json().result).toEqual([])
      const plain = await cli(['shadow', 'drift', '--selector', 'site=drift'])
      expect(plain.code, describeRun(plain)).toBe(0)
      expect(plain.stdout).toBe('')
    })

    it('without --selector it looks at every device; a bad --older-than is exit 4', async () => {
      const all = await cli(['shadow', 'drift', '--older-than', '0s', '-o', 'json'])
      expect(all.code, describeRun(all)).toBe(1)
      const ids = all.json<DriftEntry[]>().result.map((e) => e.device_id)
      expect(ids).toEqual(expect.arrayContaining(['th-1', 'grp-1']))
      expect(ids).not.toContain('drift-1')
      expectJsonError(await cli(['shadow', 'drift', '--older-than', 'soon', '-o', 'json']), 4, 'E_DURATION')
    })
  })

  it('help of every shadow command works without a database', async () => {
    const results = await mapLimit(['get', 'set', 'history', 'drift', 'watch'], 2, (c) => cli(['shadow', c, '--help']))
    for (const r of results) {
      expect(r.code, describeRun(r)).toBe(0)
      expect(r.stdout).toMatch(/USAGE/)
    }
  })
})

/** A long-running CLI (watch) whose stdout lines are visible while it runs. */
function spawnCli(env: Record<string, string | undefined>, args: string[]) {
  const full: NodeJS.ProcessEnv = {...process.env, NODE_ENV: undefined, CI: 'true', NO_COLOR: '1', ...env}
  for (const key of Object.keys(full)) if (full[key] === undefined) delete full[key]
  const child = spawn(process.execPath, [BIN, ...args], {env: full, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  return {
    child,
    lines: () => stdout.split('\n').filter((l) => l.length > 0),
    exit: async (timeoutMs: number): Promise<CliResult> => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const code = await closed
      clearTimeout(timer)
      return {code, stdout, stderr, json: () => JSON.parse(stdout)}
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}
