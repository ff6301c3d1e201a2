import {readdir, readFile, stat} from 'node:fs/promises'
import {createRequire} from 'node:module'
import {dirname, extname, join, resolve} from 'node:path'
import type {Document, Node as YamlNode} from 'yaml'
import {notFound} from '../core/errors.js'
import {manifestErrors} from './issues.js'
import {CACHE_MIN_BYTES, parseCache, type ParsedDocument} from './parse-cache.js'
import type {FieldPath, ManifestIssue, Position, Source} from './types.js'

/** Limits are explicit (DESIGN.md §4): a manifest file, and aliases per document (billion laughs). */
export const MAX_MANIFEST_BYTES = 10 * 1024 * 1024
export const MAX_ALIAS_COUNT = 100
const EXTENSIONS = new Set(['.yaml', '.yml', '.json'])

/** One YAML document, parsed, with the means to point at any field of it. */
export interface RawDocument {
  value: unknown
  source: Source
}

export interface LoadOptions {
  recursive: boolean
  /** How `-` is read (the command passes stdin; tests pass text). */
  readStdin: () => Promise<Buffer>
  maxBytes?: number
  maxAliases?: number
  /** Where parsed large files are kept between runs ($IOTCTL_HOME/cache/manifests); none: no cache. */
  cacheDir?: string
}

const yamlVersion = () => (createRequire(import.meta.url)('yaml/package.json') as {version: string}).version

type YamlModule = typeof import('yaml')

/**
 * Every document of every source, before anything is validated or touched: files, directories
 * (their .yaml/.yml/.json files in name order; subdirectories with `recursive`) and `-` for stdin.
 * All problems of all files are reported together, then the load fails (exit 4).
 */
export async function loadDocuments(sources: string[], options: LoadOptions): Promise<RawDocument[]> {
  const yaml = await import('yaml')
  const issues: ManifestIssue[] = []
  const documents: RawDocument[] = []
  const maxBytes = options.maxBytes ?? MAX_MANIFEST_BYTES
  const maxAliases = options.maxAliases ?? MAX_ALIAS_COUNT
  const cache = options.cacheDir ? parseCache(options.cacheDir, `${yamlVersion()}/${maxAliases}`) : undefined
  for (const source of sources) {
    for (const file of await expand(source, options.recursive)) {
      const text = await readSource(file, options, maxBytes, issues)
      if (text === undefined) continue
      const pos = positions(yaml, text, label(file))
      const cacheable = cache && file !== '-' && text.length >= CACHE_MIN_BYTES
      let parsed = cacheable ? await cache.get(file, text) : undefined
      if (!parsed) {
        const before = issues.length
        parsed = parseText(yaml, text, pos, issues, maxAliases)
        if (cacheable && issues.length === before) await cache.put(file, text, parsed)
      }
      for (const doc of parsed) documents.push(toRaw(yaml, text, file, pos, doc))
    }
  }
  if (issues.length > 0) throw manifestErrors(issues)
  if (documents.length === 0) {
    throw manifestErrors([{position: {file: sources.join(', '), line: 1, column: 1}, path: '', message: 'no manifest documents found (expected .yaml, .yml or .json files with apiVersion, kind, metadata and spec)'}])
  }
  return documents
}

async function expand(source: string, recursive: boolean): Promise<string[]> {
  if (source === '-') return ['-']
  const info = await stat(source).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw notFound('E_FILE_NOT_FOUND', `${source} does not exist`, {hint: 'pass a manifest file, a directory of them, or - for stdin'})
    throw error
  })
  if (!info.isDirectory()) return [source]
  const files: string[] = []
  const entries = (await readdir(source, {withFileTypes: true})).sort((a, b) => (a.name < b.name ? -1 : 1))
  for (const entry of entries) {
    const path = join(source, entry.name)
    if (entry.isDirectory() && recursive) files.push(...(await expand(path, true)))
    else if (entry.isFile() && EXTENSIONS.has(extname(entry.name))) files.push(path)
  }
  return files
}

async function readSource(file: string, options: LoadOptions, maxBytes: number, issues: ManifestIssue[]): Promise<string | undefined> {
  const tooLarge = (size: number) => issues.push({position: {file: label(file), line: 1, column: 1}, path: '',
    message: `the file is ${size} bytes; the limit is ${maxBytes} bytes: split it into several files in a directory`})
  if (file === '-') {
    const bytes = await options.readStdin()
    if (bytes.length > maxBytes) return void tooLarge(bytes.length)
    return bytes.toString('utf8')
  }
  const info = await stat(file)
  if (info.size > maxBytes) return void tooLarge(info.size) // refused before it is read
  return readFile(file, 'utf8')
}

const label = (file: string) => (file === '-' ? '<stdin>' : file)

/**
 * 1-based line and column of an offset, from yaml's LineCounter, fed on first use by one scan for
 * line breaks (a cached parse has no parser run to feed it).
 */
function positions(yaml: YamlModule, text: string, name: string): (offset: number) => Position {
  let counter: InstanceType<YamlModule['LineCounter']> | undefined
  return (offset) => {
    if (!counter) {
      counter = new yaml.LineCounter()
      counter.addNewLine(0)
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) counter.addNewLine(i + 1)
    }
    const p = counter.linePos(offset)
    return {file: name, line: p.line, column: p.col}
  }
}

/**
 * Documents are composed one at a time and dropped once converted: a 10,000-document file would
 * otherwise keep every syntax tree alive at once, and the garbage collector cost more than parsing.
 */
function parseText(yaml: YamlModule, text: string, pos: (offset: number) => Position, issues: ManifestIssue[], maxAliases: number): ParsedDocument[] {
  const composer = new yaml.Composer({uniqueKeys: true, strict: true})
  const out: ParsedDocument[] = []
  for (const doc of composer.compose(new yaml.Parser().parse(text), true, text.length)) {
    if (doc.errors.length > 0) {
      for (const error of doc.errors) {
        const what = error.code === 'DUPLICATE_KEY' ? 'duplicate key' : 'YAML syntax error'
        issues.push({position: pos(error.pos[0]), path: '', message: `${what}: ${error.message.split('\n')[0]}`})
      }
      continue
    }
    let value: unknown
    try {
      value = doc.toJS({maxAliasCount: maxAliases})
    } catch (error) {
      issues.push({position: pos(doc.range[0]), path: '', message: /alias/i.test((error as Error).message)
        ? `too many aliases: the document expands more than ${maxAliases} aliases (an alias bomb?); write the values out`
        : `cannot read the document: ${(error as Error).message}`})
      continue
    }
    if (value === null || value === undefined) continue // only comments, or nothing after a ---
    out.push({value, from: doc.range[0], to: doc.range[2], start: doc.contents?.range?.[0] ?? doc.range[0]})
  }
  return out
}

/**
 * Positions are needed only for errors, so a document's tree is rebuilt from its slice of the
 * text when a field's position is first asked for (the document's start is known without it).
 */
function toRaw(yaml: YamlModule, text: string, file: string, pos: (offset: number) => Position, doc: ParsedDocument): RawDocument {
  let tree: Document.Parsed | undefined
  const at = (path: FieldPath, onKey?: boolean) => {
    if (path.length === 0) return pos(doc.start)
    tree ??= yaml.parseDocument(text.slice(doc.from, doc.to), {uniqueKeys: false})
    return pos(doc.from + locate(yaml, tree, path, onKey ?? false))
  }
  return {value: doc.value, source: {file: label(file), dir: file === '-' ? process.cwd() : dirname(resolve(file)), at}}
}

/** Offset of a field path in a document: the key (for unknown fields) or the value; else the nearest ancestor. */
function locate(yaml: YamlModule, doc: Document.Parsed, path: FieldPath, onKey: boolean): number {
  let node: YamlNode | null | undefined = doc.contents
  let offset = node?.range?.[0] ?? doc.range[0]
  for (let i = 0; i < path.length; i++) {
    const segment = path[i]
    const last = i === path.length - 1
    if (yaml.isMap(node)) {
      const pair = node.items.find((p) => (yaml.isScalar(p.key) ? p.key.value : p.key) === segment)
      if (!pair) return offset
      const keyNode = pair.key as YamlNode | null
      const valueNode = pair.value as YamlNode | null
      if (last && onKey && keyNode?.range) return keyNode.range[0]
      offset = valueNode?.range?.[0] ?? keyNode?.range?.[0] ?? offset
      node = valueNode
    } else if (yaml.isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as YamlNode | undefined
      if (!item?.range) return offset
      offset = item.range[0]
      node = item
    } else {
      return offset
    }
  }
  return offset
}
