import {mkdtemp, mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {beforeAll, describe, expect, it} from 'vitest'
import {loadObjects} from '../../src/lib/manifest/index.js'
import type {IotctlError} from '../../src/lib/core/errors.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotctl-manifest-'))
})

const noStdin = () => Promise.reject(new Error('stdin not expected'))

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

/** The single issue of a failed load: exit 4, position, field path, message. */
async function failure(text: string, name = `m-${Math.random().toString(36).slice(2)}.yaml`) {
  const path = await write(name, text)
  const error = await loadObjects({files: [path], recursive: false, readStdin: noStdin}).then(() => undefined, (e: IotctlError) => e)
  expect(error, 'the load should fail').toBeDefined()
  expect(error!.exitCode).toBe(4)
  expect(error!.code).toBe('E_MANIFEST_INVALID')
  const issues = error!.data!.issues as Array<{file: string; line: number; column: number; path: string; message: string}>
  return {path, error: error!, issues, first: issues[0]!}
}

const DEVICE = `apiVersion: iotctl/v1
kind: Device
metadata:
  name: dev-1
  labels: {site: berlin}
spec:
  type: thermostat
  owner: 42
`

describe('manifest loading and validation: every error names file:line:column, the field and what is expected', () => {
  it('reads a valid multi-document file with positions', async () => {
    const path = await write('ok.yaml', `${DEVICE}---\n${DEVICE.replace('dev-1', 'dev-2')}---\n`)
    const objects = await loadObjects({files: [path], recursive: false, readStdin: noStdin})
    expect(objects.map((o) => [o.kind, o.name])).toEqual([['Device', 'dev-1'], ['Device', 'dev-2']])
    expect(objects[1]!.source.at(['spec', 'owner'])).toEqual({file: path, line: 17, column: 10})
  })

  it('YAML syntax error', async () => {
    const {path, first, error} = await failure('apiVersion: iotctl/v1\nkind: Device\nmetadata: {name: dev-1\nspec: {}\n')
    expect(first.file).toBe(path)
    expect(first.line).toBeGreaterThanOrEqual(3)
    expect(first.message).toMatch(/^YAML syntax error: /)
    expect(error.message).toContain(`${path}:${first.line}:${first.column}: YAML syntax error`)
  })

  it('duplicate key', async () => {
    const {first} = await failure(DEVICE.replace('  owner: 42\n', '  owner: 42\n  owner: 43\n'))
    expect(first).toMatchObject({line: 9, column: 3})
    expect(first.message).toMatch(/^duplicate key: .*unique/i)
  })

  it('unknown field: points at the key and lists the known ones', async () => {
    const {first} = await failure(DEVICE.replace('  owner: 42\n', '  owner: 42\n  colour: red\n'))
    expect(first).toMatchObject({line: 9, column: 3, path: 'spec.colour'})
    expect(first.message).toBe('unknown field "colour"; expected one of type, owner, firmware, metadata, certificate')
  })

  it('wrong type', async () => {
    const {first} = await failure(DEVICE.replace('owner: 42', 'owner: forty-two'))
    expect(first).toMatchObject({line: 8, column: 10, path: 'spec.owner'})
    expect(first.message).toMatch(/expected number, received string/)
  })

  it('a firmware version YAML reads as a number', async () => {
    const {first} = await failure(DEVICE.replace('owner: 42', 'firmware: 2.4'))
    expect(first).toMatchObject({line: 8, path: 'spec.firmware'})
    expect(first.message).toMatch(/expected string/)
  })

  it('unknown kind and unknown apiVersion', async () => {
    const kind = await failure(DEVICE.replace('kind: Device', 'kind: Gadget'))
    expect(kind.first).toMatchObject({line: 2, column: 7, path: 'kind'})
    expect(kind.first.message).toBe('unknown kind "Gadget"; expected one of Device, DeviceGroup, Firmware, DesiredState, Rollout')
    const api = await failure(DEVICE.replace('iotctl/v1', 'iotctl/v2'))
    expect(api.first).toMatchObject({line: 1, column: 13, path: 'apiVersion'})
    expect(api.first.message).toBe('unknown apiVersion "iotctl/v2"; expected "iotctl/v1"')
  })

  it('a missing required field points at its parent', async () => {
    const {first} = await failure(DEVICE.replace('  type: thermostat\n', ''))
    expect(first).toMatchObject({line: 7, path: 'spec.type'})
    expect(first.message).toMatch(/expected string, received undefined/)
  })

  it('an alias bomb is refused', async () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for (let i = 1; i < 8; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`)
    const {first} = await failure(`apiVersion: iotctl/v1\nkind: Device\nmetadata: {name: dev-1}\nspec:\n  type: t\n  metadata:\n${levels.map((l) => `    ${l}`).join('\n')}\n`)
    expect(first).toMatchObject({line: 1, column: 1})
    expect(first.message).toMatch(/too many aliases: .* more than 100 aliases/)
  })

  it('a file over 10 MiB is refused before it is read', async () => {
    const {first} = await failure(`${DEVICE}# ${'x'.repeat(10 * 1024 * 1024)}\n`, 'big.yaml')
    expect(first).toMatchObject({line: 1, column: 1})
    expect(first.message).toMatch(/^the file is 10485\d{3} bytes; the limit is 10485760 bytes/)
  })

  it('reports the problems of several documents together, and a bad name and label', async () => {
    const {issues} = await failure(`${DEVICE.replace('name: dev-1', 'name: Dev_1')}---\n${DEVICE.replace('site: berlin', 'site: "two words"')}`)
    expect(issues.map((i) => [i.line, i.path])).toEqual([[4, 'metadata.name'], [14, 'metadata.labels.site']])
    expect(issues[0]!.message).toMatch(/^expected a name: /)
  })

  it('directories: only manifest files, subdirectories with recursive; stdin', async () => {
    await mkdir(join(dir, 'tree/sub'), {recursive: true})
    await writeFile(join(dir, 'tree/a.yaml'), DEVICE)
    await writeFile(join(dir, 'tree/notes.txt'), 'not a manifest')
    await writeFile(join(dir, 'tree/sub/b.yml'), DEVICE.replace('dev-1', 'dev-2'))
    const flat = await loadObjects({files: [join(dir, 'tree')], recursive: false, readStdin: noStdin})
    expect(flat.map((o) => o.name)).toEqual(['dev-1'])
    const deep = await loadObjects({files: [join(dir, 'tree')], recursive: true, readStdin: noStdin})
    expect(deep.map((o) => o.name)).toEqual(['dev-1', 'dev-2'])
    const piped = await loadObjects({files: ['-'], recursive: false, readStdin: async () => Buffer.from(DEVICE)})
    expect(piped[0]!.source.at(['spec', 'type'])).toEqual({file: '<stdin>', line: 7, column: 9})
  })
})

describe('the parse cache of large files', () => {
  it('serves the same values and positions for the same bytes, never stale ones, and survives a corrupt entry', async () => {
    const cacheDir = join(dir, 'cache')
    const docs = Array.from({length: 2500}, (_, i) => DEVICE.replace('dev-1', `dev-${i}`)).join('---\n')
    const path = await write('large.yaml', docs)
    const load = () => loadObjects({files: [path], recursive: false, readStdin: noStdin, cacheDir})
    const first = await load()
    const entries = await readdir(cacheDir)
    expect(entries).toHaveLength(1)
    const second = await load()
    expect(second.map((o) => [o.name, o.spec])).toEqual(first.map((o) => [o.name, o.spec]))
    expect(second[2499]!.source.at(['spec', 'owner'])).toEqual(first[2499]!.source.at(['spec', 'owner']))
    expect(second[2499]!.source.at(['spec', 'owner'])).toEqual({file: path, line: 2499 * 9 + 8, column: 10})
    // Proof that the entry is what is read: an edited entry (same bytes on disk) is served, and still validated.
    const entryPath = join(cacheDir, entries[0]!)
    const entry = JSON.parse(await readFile(entryPath, 'utf8'))
    entry.documents[0].value.spec.owner = 99
    await writeFile(entryPath, JSON.stringify(entry))
    expect((await load())[0]!.spec).toMatchObject({owner: 99})
    entry.documents[0].value.spec.owner = 'not a number'
    await writeFile(entryPath, JSON.stringify(entry))
    await expect(load()).rejects.toMatchObject({exitCode: 4})
    // Other bytes: parsed again, not served from the entry of the same path.
    await writeFile(path, docs.replace('owner: 42', 'owner: 7'))
    expect((await load())[0]!.spec).toMatchObject({owner: 7})
    await writeFile(join(cacheDir, entries[0]!), '{not json')
    expect((await load())[0]!.spec).toMatchObject({owner: 7})
    // A file with an error is never cached: the error comes back every time.
    await writeFile(path, `${docs}---\n${DEVICE.replace('owner: 42', 'owner: 42\n  owner: 43')}`)
    await expect(load()).rejects.toMatchObject({exitCode: 4})
    await expect(load()).rejects.toMatchObject({exitCode: 4})
  })
})
