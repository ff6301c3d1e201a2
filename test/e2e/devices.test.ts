import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse as parseYaml} from 'yaml'
import {freshDatabase, type TestDatabase} from '../helpers/database.js'
import {boundCli, describeRun, expectJsonError, expectOk, expectPlainError, mapLimit, type Cli} from '../helpers/e2e-expect.js'


async function listIds(cli: Cli, args: string[]): Promise<string[]> {
  const page = expectOk<{items: Array<{device_id: string}>; next: string | null}>(await cli(['devices', 'list', '--json', ...args]))
  return page.items.map((d) => d.device_id)
}

describe('devices register, get and output formats', () => {
  let db: TestDatabase
  let cli: Cli
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    const r = await cli(['devices', 'register', 'dev-1', '--type', 'thermostat', '--owner', '42', '--firmware', '2.4.0',
      '--label', 'site=berlin', '--label', 'tier=prod', '--meta', 'room=3.14', '--json'])
    expect(r.code, describeRun(r)).toBe(0)
  })
  afterAll(async () => db.drop())

  it('get -o json shows every field that register was given', async () => {
    const d = expectOk(await cli(['devices', 'get', 'dev-1', '-o', 'json']))
    expect(d).toMatchObject({device_id: 'dev-1', device_type: 'thermostat', owner_user_id: 42, firmware_version: '2.4.0',
      status: 'active', labels: {site: 'berlin', tier: 'prod'}, metadata: {room: '3.14'}, row_version: 1, last_seen_at: null})
  })

  it('get -o yaml, -o name and the table', async () => {
    const yaml = await cli(['devices', 'get', 'dev-1', '-o', 'yaml'])
    expect(yaml.code).toBe(0)
    expect(parseYaml(yaml.stdout)).toMatchObject({device_id: 'dev-1', labels: {site: 'berlin', tier: 'prod'}, owner_user_id: 42})
    const name = await cli(['devices', 'get', 'dev-1', '-o', 'name'])
    expect(name.stdout).toBe('device/dev-1\n')
    const table = await cli(['devices', 'get', 'dev-1'])
    const [head, row] = table.stdout.trimEnd().split('\n')
    expect(head!.trim().split(/\s+/)).toEqual(['DEVICE_ID', 'TYPE', 'STATUS', 'FIRMWARE', 'OWNER', 'LABELS', 'LAST_SEEN'])
    expect(row).toMatch(/^dev-1\s+thermostat\s+active\s+2\.4\.0\s+42\s+site=berlin,tier=prod$/)
    expect(table.stderr).toBe('')
  })
})

describe('devices list filters', () => {
  let db: TestDatabase
  let cli: Cli
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    const fleet = [
      ['t-01', '--type', 'thermostat', '--firmware', '2.4.0', '--label', 'site=berlin', '--label', 'tier=prod', '--label', 'env=prod'],
      ['t-02', '--type', 'thermostat', '--firmware', '2.5.0', '--label', 'site=berlin', '--label', 'tier=test', '--label', 'env=stage'],
      ['t-03', '--type', 'sensor', '--firmware', '1.0.0', '--label', 'site=paris', '--label', 'env=dev', '--label', 'legacy=true'],
      ['t-04', '--type', 'sensor', '--label', 'site=berlin', '--label', 'env=prod'],
    ]
    for (const r of await mapLimit(fleet, 2, (args) => cli(['devices', 'register', ...args]))) expect(r.code, describeRun(r)).toBe(0)
    expect((await cli(['devices', 'update', 't-04', '--status', 'offline'])).code).toBe(0)
  })
  afterAll(async () => db.drop())

  it.each([
    ['site=berlin', ['t-01', 't-02', 't-04']],
    ['site=berlin,tier!=test', ['t-01', 't-04']],
    ['type=sensor', ['t-03', 't-04']],
    ['status=offline', ['t-04']],
    ['firmware<2.5.0', ['t-01', 't-03']],
    ['env in (prod,stage)', ['t-01', 't-02', 't-04']],
    ['!legacy', ['t-01', 't-02', 't-04']],
    ['site=berlin,type=thermostat,firmware>=2.5.0', ['t-02']],
  ])('--selector %s', async (selector, expected) => {
    expect(await listIds(cli, ['--selector', selector])).toEqual(expected)
  })

  it('--type, --status and --firmware, alone and together with --selector', async () => {
    expect(await listIds(cli, ['--type', 'thermostat'])).toEqual(['t-01', 't-02'])
    expect(await listIds(cli, ['--status', 'offline'])).toEqual(['t-04'])
    expect(await listIds(cli, ['--firmware', '^2.4'])).toEqual(['t-01', 't-02'])
    expect(await listIds(cli, ['--selector', 'site=berlin', '--type', 'thermostat', '--firmware', '<2.5.0'])).toEqual(['t-01'])
  })
})

describe('devices list keyset pagination', () => {
  let db: TestDatabase
  let cli: Cli
  const ids = Array.from({length: 25}, (_, i) => `p-${String(i).padStart(3, '0')}`)
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    // Registered out of order (pages follow the id, not insertion order), in one call: 25 separate
    // `register` processes cost seconds on two cores, and register itself is covered above.
    const order = [...ids].sort((a, b) => (a.slice(-1) + a).localeCompare(b.slice(-1) + b))
    const jsonl = order.map((id) => JSON.stringify({device_id: id, device_type: 'meter'})).join('\n')
    const r = await cli(['devices', 'import', '-', '--format', 'jsonl', '--json'], {input: jsonl})
    expect(expectOk(r)).toMatchObject({rows: 25, inserted: 25})
  })
  afterAll(async () => db.drop())

  it('--limit 10 pages via result.next / --after until null: all 25 once, in id order', async () => {
    const seen: string[] = []
    const sizes: number[] = []
    let after: string | null = null
    for (let pages = 0; pages < 10; pages++) {
      const r = await cli(['devices', 'list', '--limit', '10', '-o', 'json', ...(after ? ['--after', after] : [])])
      const page = expectOk<{items: Array<{device_id: string}>; next: string | null}>(r)
      seen.push(...page.items.map((d) => d.device_id))
      sizes.push(page.items.length)
      after = page.next
      if (after === null) break
    }
    expect(after).toBeNull()
    expect(sizes).toEqual([10, 10, 5])
    expect(seen).toEqual(ids)
  })

  it('the table shows the next cursor on stderr, not stdout', async () => {
    const r = await cli(['devices', 'list', '--limit', '10'])
    expect(r.code).toBe(0)
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(11)
    expect(r.stderr).toMatch(/^more devices: --after \S+\n$/)
  })
})

describe('devices update and deprovision', () => {
  let db: TestDatabase
  let cli: Cli
  beforeAll(async () => {
    db = await freshDatabase()
    ;({cli} = await boundCli(db.url))
    for (const id of ['u-1', 'u-2']) {
      const r = await cli(['devices', 'register', id, '--type', 'sensor', '--firmware', '1.0.0', '--label', 'legacy=yes', '--label', 'site=oslo', '--meta', 'a=1'])
      expect(r.code, describeRun(r)).toBe(0)
    }
  })
  afterAll(async () => db.drop())

  it('update changes labels, metadata, firmware and status and bumps row_version', async () => {
    const d = expectOk(await cli(['devices', 'update', 'u-1', '--label', 'tier=prod', '--remove-label', 'legacy', '--meta', 'b=2',
      '--firmware', '1.1.0', '--status', 'offline', '--json']))
    expect(d).toMatchObject({labels: {site: 'oslo', tier: 'prod'}, metadata: {a: '1', b: '2'}, firmware_version: '1.1.0', status: 'offline', row_version: 2})
    expect(d.labels).not.toHaveProperty('legacy')
    expect(await listIds(cli, ['--selector', 'firmware=1.1.0,!legacy'])).toEqual(['u-1'])
  })

  it('--expected-version: a wrong one is exit 5 and changes nothing; the right one applies', async () => {
    const before = expectOk(await cli(['devices', 'get', 'u-2', '--json']))
    const err = expectJsonError(await cli(['devices', 'update', 'u-2', '--label', 'x=1', '--expected-version', '7', '--json']), 5, 'E_VERSION_CONFLICT')
    expect(err.message).toMatch(/version 1, not 7/)
    expect(expectOk(await cli(['devices', 'get', 'u-2', '--json']))).toEqual(before)
    const after = expectOk(await cli(['devices', 'update', 'u-2', '--label', 'x=1', '--expected-version', String(before.row_version), '--json']))
    expect(after.row_version).toBe(before.row_version + 1)
    expect(after.labels).toMatchObject({x: '1'})
  })

  it('deprovision needs --yes without a terminal: exit 2, device unchanged', async () => {
    const before = expectOk(await cli(['devices', 'get', 'u-2', '--json']))
    const r = await cli(['devices', 'deprovision', 'u-2'])
    expectPlainError(r, 2)
    expect(r.stderr).toMatch(/--yes/)
    expectJsonError(await cli(['devices', 'deprovision', 'u-2', '--json']), 2, 'E_CONFIRMATION_REQUIRED')
    expect(expectOk(await cli(['devices', 'get', 'u-2', '--json']))).toEqual(before)
  })

  it('deprovision --yes keeps the row; a second one is still exit 0; update afterwards is exit 3', async () => {
    const before = expectOk(await cli(['devices', 'get', 'u-2', '--json']))
    const d = expectOk(await cli(['devices', 'deprovision', 'u-2', '--yes', '--json']))
    expect(d).toMatchObject({device_id: 'u-2', status: 'deprovisioned', row_version: before.row_version + 1})
    const again = expectOk(await cli(['devices', 'deprovision', 'u-2', '--yes', '--json']))
    expect(again).toEqual(d)
    // deprovision also reports the certificates it revoked; `get` shows the device alone.
    const device = {...d}
    delete device.revoked_certificates
    expect(expectOk(await cli(['devices', 'get', 'u-2', '--json']))).toEqual(device)
    expect(await listIds(cli, ['--status', 'deprovisioned'])).toEqual(['u-2'])
    const err = expectJsonError(await cli(['devices', 'update', 'u-2', '--label', 'y=2', '--json']), 3, 'E_DEVICE_DEPROVISIONED')
    expect(err.message).toMatch(/u-2/)
    expect(expectOk(await cli(['devices', 'get', 'u-2', '--json']))).toEqual(device)
  })
})
