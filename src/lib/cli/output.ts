import type {IotctlError} from '../core/errors.js'

export const OUTPUT_FORMATS = ['table', 'json', 'yaml', 'name', 'csv'] as const
export type OutputFormat = (typeof OUTPUT_FORMATS)[number]

export interface Column<T> {
  header: string
  get: (row: T) => unknown
  /** CSV header; defaults to the table header in lower case. */
  key?: string
}

/** How a command's result looks in each format; commands return data, this renders it. */
export interface View<T> {
  /** Rows for table and name output; the result itself is used for json and yaml. */
  rows: (result: unknown) => T[]
  columns: Column<T>[]
  /** kubectl-style `kind/name` for `-o name`. */
  name: (row: T) => string
}

export interface Envelope {
  status: number
  result?: unknown
  error?: {code: string; message: string; hint?: string; data?: Record<string, unknown>}
  warnings: string[]
}

export function successEnvelope(result: unknown, warnings: string[]): Envelope {
  return {status: 0, result, warnings}
}

export function errorEnvelope(error: IotctlError, warnings: string[]): Envelope {
  const body: Envelope['error'] = {code: error.code, message: error.message}
  if (error.hint) body.hint = error.hint
  if (error.data) body.data = error.data
  return {status: error.exitCode, error: body, warnings}
}

export async function renderResult<T>(
  result: unknown,
  format: OutputFormat,
  view: View<T> | undefined,
  warnings: string[],
): Promise<string> {
  switch (format) {
    case 'json': {
      return JSON.stringify(successEnvelope(result, warnings), null, 2) + '\n'
    }
    case 'yaml': {
      const {stringify} = await import('yaml')
      return stringify(result ?? null)
    }
    case 'name': {
      if (!view) return ''
      return view.rows(result).map((row) => view.name(row) + '\n').join('')
    }
    case 'csv': {
      return renderCsv(result, view)
    }
    case 'table': {
      if (!view) {
        const {stringify} = await import('yaml')
        return stringify(result ?? null)
      }
      return renderTable(view.rows(result), view.columns)
    }
  }
}

export function cellText(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
    return entries.map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(',')
  }
  return String(value)
}

/**
 * RFC 4180 CSV (csv-stringify quotes fields with commas, quotes or line breaks): the view's rows and
 * columns, or, without a view, the result's own records (an array of objects, or one object).
 */
async function renderCsv<T>(result: unknown, view: View<T> | undefined): Promise<string> {
  const {stringify} = await import('csv-stringify/sync')
  const cell = (value: unknown) => (typeof value === 'number' || typeof value === 'boolean' ? value : cellText(value))
  if (view) {
    const header = view.columns.map((c) => c.key ?? c.header.toLowerCase())
    return stringify([header, ...view.rows(result).map((row) => view.columns.map((c) => cell(c.get(row))))])
  }
  const records = (Array.isArray(result) ? result : result === null || result === undefined ? [] : [result]) as Array<Record<string, unknown>>
  const header = [...new Set(records.flatMap((r) => (typeof r === 'object' && r !== null ? Object.keys(r) : [])))]
  return stringify([header, ...records.map((r) => header.map((k) => cell(r?.[k])))])
}

/** kubectl-like borderless table: easy to read and to `awk`. */
async function renderTable<T>(rows: T[], columns: Column<T>[]): Promise<string> {
  if (rows.length === 0) return ''
  const {default: Table} = await import('cli-table3')
  const blank = {top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '',
    'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '',
    'right-mid': '', middle: '   '}
  const table = new Table({
    head: columns.map((c) => c.header),
    chars: blank,
    style: {head: [], border: [], 'padding-left': 0, 'padding-right': 0},
  })
  for (const row of rows) table.push(columns.map((c) => cellText(c.get(row))))
  return table.toString().split('\n').map((line) => line.trimEnd()).join('\n') + '\n'
}
