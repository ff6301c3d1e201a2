import {invalidInput, isIotctlError} from '../core/errors.js'
import {toDeviceInput, type DeviceInput} from './device.js'

export type ImportFormat = 'csv' | 'jsonl'

export interface ParsedRow {
  line: number
  device: DeviceInput
}

export interface RowError {
  line: number
  message: string
}

/** How many bad rows the error lists; the count says how many there were in all. */
const MAX_LISTED_ERRORS = 20

export function detectFormat(path: string, explicit?: string): ImportFormat {
  if (explicit === 'csv' || explicit === 'jsonl') return explicit
  if (/\.csv$/i.test(path)) return 'csv'
  if (/\.(jsonl|ndjson)$/i.test(path)) return 'jsonl'
  throw invalidInput('E_IMPORT_FORMAT', `cannot tell the format of ${JSON.stringify(path)} from its name`, {hint: 'name it .csv or .jsonl, or pass --format csv|jsonl'})
}

/** CSV cells `k=v;k=v` → object. Metadata may also be a JSON object (it can nest). */
function parsePairs(cell: string, what: string): Record<string, string> | Record<string, unknown> {
  const text = cell.trim()
  if (text === '') return {}
  if (what === 'metadata' && text.startsWith('{')) return JSON.parse(text) as Record<string, unknown>
  const out: Record<string, string> = {}
  for (const pair of text.split(';')) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw invalidInput('E_KEY_VALUE', `${what} ${JSON.stringify(pair)} is not key=value (separate pairs with ";")`, {hint: 'e.g. site=berlin;tier=prod'})
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim()
  }
  return out
}

function csvRecord(record: Record<string, string>): Record<string, unknown> {
  const raw: Record<string, unknown> = {...record}
  if (typeof record.labels === 'string') raw.labels = parsePairs(record.labels, 'labels')
  if (typeof record.metadata === 'string') raw.metadata = parsePairs(record.metadata, 'metadata')
  for (const key of ['owner_user_id', 'firmware_version', 'status'] as const) if (raw[key] === '') delete raw[key]
  return raw
}

type RawRow = {line: number; raw: Record<string, unknown> | Error}

export interface ImportChunk {
  rows: ParsedRow[]
  errors: RowError[]
}

/** Rows per chunk: the unit in which parsing, validation and the INSERTs overlap. */
export const CHUNK_ROWS = 5_000
const CHUNK_CHARS = 1 << 20

function csvError(error: unknown) {
  const line = (error as {lines?: number}).lines
  return invalidInput('E_IMPORT_CSV', `malformed CSV${line ? ` at line ${line}` : ''}: ${(error as Error).message}`, {hint: 'the first line names the columns: device_id,device_type,owner_user_id,firmware_version,labels,metadata'})
}

/**
 * CSV records in chunks from csv-parse's streaming parser, fed 1 MiB at a time, so the caller can
 * validate and insert one chunk while the next is parsed. on_record's context carries the line
 * number (`info: true` would cost ~30% more per row); cells are trimmed here, not by the parser.
 */
async function* csvChunks(text: string): AsyncGenerator<RawRow[]> {
  const {parse} = await import('csv-parse')
  let failure: unknown
  const parser = parse({columns: true, skip_empty_lines: true, bom: true,
    on_record: (record: Record<string, string>, context: {lines: number}): RawRow => {
      try {
        return {line: context.lines, raw: csvRecord(trimmed(record))}
      } catch (error) {
        return {line: context.lines, raw: error as Error}
      }
    }})
  parser.on('error', (error) => (failure ??= error))
  const buffered: RawRow[] = []
  const drain = () => {
    for (let record = parser.read(); record !== null; record = parser.read()) buffered.push(record as RawRow)
    if (failure) throw csvError(failure)
  }
  for (let at = 0; at < text.length; at += CHUNK_CHARS) {
    parser.write(text.slice(at, at + CHUNK_CHARS))
    drain()
    while (buffered.length >= CHUNK_ROWS) yield buffered.splice(0, CHUNK_ROWS)
  }
  parser.end()
  await new Promise((resolve) => setImmediate(resolve)) // errors found at the end arrive asynchronously
  drain()
  if (buffered.length > 0) yield buffered
}

function trimmed(record: Record<string, string>): Record<string, string> {
  for (const key of Object.keys(record)) {
    const value = record[key]!
    if (value.length > 0 && (value.charCodeAt(0) <= 32 || value.charCodeAt(value.length - 1) <= 32)) record[key] = value.trim()
  }
  return record
}

async function* jsonlChunks(text: string): AsyncGenerator<RawRow[]> {
  let rows: RawRow[] = []
  let line = 0
  for (let at = 0; at <= text.length; ) {
    const end = text.indexOf('\n', at) === -1 ? text.length : text.indexOf('\n', at)
    const content = text.slice(at, end)
    line += 1
    at = end + 1
    if (content.trim() === '') continue
    try {
      const value = JSON.parse(content) as unknown
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('each line must be a JSON object')
      rows.push({line, raw: value as Record<string, unknown>})
    } catch (error) {
      rows.push({line, raw: error as Error})
    }
    if (rows.length >= CHUNK_ROWS) {
      yield rows
      rows = []
    }
  }
  if (rows.length > 0) yield rows
}

/**
 * Validated chunks of an import, in file order. Every bad row is reported by line number, and ids
 * repeated within the file are caught across chunks, so a failed import can be fixed in one pass.
 */
export async function* importChunks(text: string, format: ImportFormat): AsyncGenerator<ImportChunk> {
  const seen = new Map<string, number>()
  for await (const raws of format === 'csv' ? csvChunks(text) : jsonlChunks(text)) {
    const chunk: ImportChunk = {rows: [], errors: []}
    for (const {line, raw} of raws) {
      try {
        if (raw instanceof Error) throw raw
        const device = toDeviceInput(raw)
        const first = seen.get(device.device_id)
        if (first !== undefined) throw new Error(`device_id ${device.device_id} repeats line ${first}`)
        seen.set(device.device_id, line)
        chunk.rows.push({line, device})
      } catch (error) {
        chunk.errors.push({line, message: isIotctlError(error) || error instanceof Error ? error.message : String(error)})
      }
    }
    yield chunk
  }
}

/** The whole file at once: every row validated, or an error listing every bad row. */
export async function parseImport(text: string, format: ImportFormat): Promise<ParsedRow[]> {
  const parsed: ParsedRow[] = []
  const errors: RowError[] = []
  for await (const chunk of importChunks(text, format)) {
    parsed.push(...chunk.rows)
    errors.push(...chunk.errors)
  }
  if (errors.length > 0) throw importErrors(errors)
  if (parsed.length === 0) throw emptyImport()
  return parsed
}

export const emptyImport = () =>
  invalidInput('E_IMPORT_EMPTY', 'the file holds no devices', {hint: 'one device per line (JSON Lines) or per row after the header (CSV)'})

export function importErrors(errors: RowError[]) {
  const listed = errors.slice(0, MAX_LISTED_ERRORS).map((e) => `  line ${e.line}: ${e.message}`).join('\n')
  const more = errors.length > MAX_LISTED_ERRORS ? `\n  … and ${errors.length - MAX_LISTED_ERRORS} more` : ''
  return invalidInput('E_IMPORT_ROWS', `${errors.length} invalid row(s); nothing was imported:\n${listed}${more}`, {
    hint: 'fix the rows listed and run the import again',
    data: {errors: errors.slice(0, 1000)},
  })
}
