import {mkdtemp, readFile, readdir, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'vitest'
import type {Database} from '../../src/lib/db/pool.js'
import {registerDevice, toDeviceInput} from '../../src/lib/registry/index.js'

export const PASSPHRASE = 'correct horse battery staple'
export const WRONG_PASSPHRASE = 'not the passphrase at all'

export const DAY_MS = 86_400_000
export const HOUR_MS = 3_600_000

/** A fresh temporary directory; remove it with `cleanup(dir)` in afterAll. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `iotctl-${prefix}-`))
}

export async function cleanup(...dirs: Array<string | undefined>): Promise<void> {
  for (const dir of dirs) if (dir) await rm(dir, {recursive: true, force: true})
}

export async function registerDevices(db: Database, ids: string[], type = 'thermostat'): Promise<void> {
  for (const id of ids) await registerDevice(db, toDeviceInput({device_id: id, device_type: type}))
}

export const caPath = (caDir: string, name: string) => join(caDir, name)

export async function caPem(caDir: string, ...names: string[]): Promise<string> {
  let pem = ''
  for (const name of names) pem += await readFile(join(caDir, name), 'utf8')
  return pem
}

/** File mode bits (e.g. 0o600). */
export async function fileMode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777
}

/** Files in a directory, or [] when it does not exist. */
export async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return []
    throw error
  })
}

/** Assert that a promise rejects with an IotctlError of this exit code (and optional error code). */
export async function expectIotctlError(promise: Promise<unknown>, exitCode: number, code?: string, message?: RegExp): Promise<Error & {code: string; exitCode: number}> {
  let caught: unknown
  try {
    await promise
  } catch (error) {
    caught = error
  }
  expect(caught, 'expected the call to fail').toBeInstanceOf(Error)
  const e = caught as Error & {code: string; exitCode: number}
  expect({exitCode: e.exitCode, code: code === undefined ? undefined : e.code}, e.stack).toEqual({exitCode, code})
  if (message) expect(e.message).toMatch(message)
  return e
}

/** Every value of every row of every table in the public schema, as text (to look for leaked keys). */
export async function dumpAllTables(db: Database): Promise<string> {
  const {rows: tables} = await db.pool.query<{table_name: string}>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")
  let text = ''
  for (const {table_name} of tables) {
    const {rows} = await db.pool.query<{row: string}>(`SELECT t::text AS row FROM "${table_name}" t`)
    for (const r of rows) text += `${table_name}: ${r.row}\n`
  }
  return text
}
