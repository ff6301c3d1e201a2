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

async function csvRows(text: string): Promise<Array<{line: number; raw: Record<string, unknown> | Error}>> {
  const {parse} = await import('csv-parse/sync')
  let records: Array<{record: Record<string, string>; info: {lines: number}}>
  try {
    records = parse(text, {columns: true, info: true, skip_empty_lines: true, trim: true, bom: true}) as typeof records
  } catch (error) {
    const line = (error as {lines?: number}).lines
    throw invalidInput('E_IMPORT_CSV', `malformed CSV${line ? ` at line ${line}` : ''}: ${(error as Error).message}`, {hint: 'the first line names the columns: device_id,device_type,owner_user_id,firmware_version,labels,metadata'})
  }
  return records.map(({record, info}) => {
    try {
      return {line: info.lines, raw: csvRecord(record)}
    } catch (error) {
      return {line: info.lines, raw: error as Error}
    }
  })
}

function jsonlRows(text: string): Array<{line: number; raw: Record<string, unknown> | Error}> {
  const rows: Array<{line: number; raw: Record<string, unknown> | Error}> = []
  text.split('\n').forEach((content, index) => {
    if (content.trim() === '') return
    try {
      const value = JSON.parse(content) as unknown
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('each line must be a JSON object')
      rows.push({line: index + 1, raw: value as Record<string, unknown>})
    } catch (error) {
      rows.push({line: index + 1, raw: error as Error})
    }
  })
  return rows
}

/**
 * Parse and validate every row before anything is written; report every bad row by line number
 * (including ids repeated within the file), so a failed import can be fixed in one pass.
 */
export async function parseImport(text: string, format: ImportFormat): Promise<ParsedRow[]> {
  const rows = format === 'csv' ? await csvRows(text) : jsonlRows(text)
  const parsed: ParsedRow[] = []
  const errors: RowError[] = []
  const seen = new Map<string, number>()
  for (const {line, raw} of rows) {
    try {
      if (raw instanceof Error) throw raw
      const device = toDeviceInput(raw)
      const first = seen.get(device.device_id)
      if (first !== undefined) throw new Error(`device_id ${device.device_id} repeats line ${first}`)
      seen.set(device.device_id, line)
      parsed.push({line, device})
    } catch (error) {
      errors.push({line, message: isIotctlError(error) || error instanceof Error ? error.message : String(error)})
    }
  }
  if (errors.length > 0) throw importErrors(errors)
  if (parsed.length === 0) throw invalidInput('E_IMPORT_EMPTY', 'the file holds no devices', {hint: 'one device per line (JSON Lines) or per row after the header (CSV)'})
  return parsed
}

function importErrors(errors: RowError[]) {
  const listed = errors.slice(0, MAX_LISTED_ERRORS).map((e) => `  line ${e.line}: ${e.message}`).join('\n')
  const more = errors.length > MAX_LISTED_ERRORS ? `\n  … and ${errors.length - MAX_LISTED_ERRORS} more` : ''
  return invalidInput('E_IMPORT_ROWS', `${errors.length} invalid row(s); nothing was imported:\n${listed}${more}`, {
    hint: 'fix the rows listed and run the import again',
    data: {errors: errors.slice(0, 1000)},
  })
}
