import type {IotctlError} from '../core/errors.js'

export const OUTPUT_FORMATS = ['table', 'json', 'yaml', 'name'] as const
export type OutputFormat = (typeof OUTPUT_FORMATS)[number]

export interface Column<T> {
  header: string
  get: (row: T) => unknown
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
