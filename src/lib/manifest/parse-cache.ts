import {createHash} from 'node:crypto'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

/** A document as the parser left it: its value and where it sits in the file's text. */
export interface ParsedDocument {
  value: unknown
  /** Offsets in the text: the document's range, and where its content starts. */
  from: number
  to: number
  start: number
}

export interface ParseCache {
  get(file: string, text: string): Promise<ParsedDocument[] | undefined>
  put(file: string, text: string, documents: ParsedDocument[]): Promise<void>
}

/** Files smaller than this parse faster than a cache entry is read. */
export const CACHE_MIN_BYTES = 256 * 1024

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * The parsed values of large manifest files, one entry per file path, valid only for the same
 * bytes, parser version and limits. GitOps loops apply the same files again and again, and YAML
 * parsing is most of a re-apply (docs/BENCHMARKS.md); JSON reads back about fifty times faster.
 * The values are re-validated on every run: the cache saves the parse, nothing else. Any problem
 * with it (missing, corrupt, unwritable) means parsing as if it were not there.
 */
export function parseCache(dir: string, version: string): ParseCache {
  const entry = (file: string) => join(dir, `${sha256(resolve(file))}.json`)
  return {
    async get(file, text) {
      try {
        const cached = JSON.parse(await readFile(entry(file), 'utf8')) as {version: string; sha256: string; documents: ParsedDocument[]}
        return cached.version === version && cached.sha256 === sha256(text) ? cached.documents : undefined
      } catch {
        return undefined
      }
    },
    async put(file, text, documents) {
      try {
        await mkdir(dir, {recursive: true, mode: 0o700})
        const tmp = `${entry(file)}.${process.pid}.tmp`
        await writeFile(tmp, JSON.stringify({version, sha256: sha256(text), documents}), {mode: 0o600})
        await rename(tmp, entry(file))
      } catch {
        // A cache that cannot be written is only slower.
      }
    },
  }
}
