import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Database} from '../../src/lib/db/pool.js'
import {deviceIssuer} from '../../src/lib/pki/index.js'
import type {ApplyOptions} from '../../src/lib/manifest/index.js'

/**
 * A checksum of every row of every table of the public schema: "the database is byte-for-byte
 * unchanged" is this value before and after.
 */
export async function databaseChecksum(db: Database): Promise<Record<string, string>> {
  const {rows: tables} = await db.pool.query<{name: string}>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")
  const sums: Record<string, string> = {}
  for (const {name} of tables) {
    const {rows} = await db.pool.query<{sum: string | null; n: string}>(`SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS sum, count(*) AS n FROM "${name}" t`)
    sums[name] = `${rows[0]!.n}:${rows[0]!.sum}`
  }
  return sums
}

/** A directory for manifests; `write(name, text)` returns the file's path. */
export async function manifestDir() {
  const dir = await mkdtemp(join(tmpdir(), 'iotctl-manifests-'))
  return {dir, write: async (name: string, text: string) => {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }}
}

/** Apply options for files, with a CA for certificate issuance when given. */
export function applyOptions(files: string[], extra: Partial<ApplyOptions> & {caDir?: string; passphrase?: string} = {}): ApplyOptions {
  const {caDir, passphrase, ...rest} = extra
  return {
    files, recursive: false, readStdin: () => Promise.reject(new Error('no stdin in this test')),
    dryRun: false, prune: false,
    issuer: (days) => caDir ? deviceIssuer({caDir, passphrase: passphrase!, days}) : Promise.reject(new Error('no CA in this test')),
    ...rest,
  }
}

export function device(name: string, labels: Record<string, string>, spec: string): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ')
  return `apiVersion: iotctl/v1\nkind: Device\nmetadata:\n  name: ${name}\n  labels: {${l}}\nspec:\n${spec.split('\n').filter(Boolean).map((s) => `  ${s}`).join('\n')}\n`
}
