import type {View} from '../output.js'
import type {Json, JsonObject, ShadowDocument} from '../../shadow/document.js'

interface ShadowRow {
  device_id: string
  key: string
  desired: string
  reported: string
  delta: string
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Dotted leaf paths of a state object: {a: {b: 1}} → a.b. */
function leaves(value: JsonObject, prefix = '', out = new Map<string, Json>()): Map<string, Json> {
  for (const [k, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${k}` : k
    if (isObject(v) && Object.keys(v).length > 0) leaves(v, path, out)
    else out.set(path, v)
  }
  return out
}

const show = (v: Json | undefined) => (v === undefined ? '' : JSON.stringify(v))

/** One row per key (leaf) of desired or reported, with the delta's value where it is unmet. */
export function shadowRows(doc: ShadowDocument & {device_id: string}): ShadowRow[] {
  const desired = leaves(doc.state.desired)
  const reported = leaves(doc.state.reported)
  const delta = leaves(doc.state.delta ?? {})
  const keys = [...new Set([...desired.keys(), ...reported.keys()])].sort()
  return keys.map((key) => ({device_id: doc.device_id, key, desired: show(desired.get(key)), reported: show(reported.get(key)), delta: show(delta.get(key))}))
}

export const shadowView: View<ShadowRow> = {
  rows: (r) => shadowRows(r as ShadowDocument & {device_id: string}),
  name: (row) => `shadow/${row.device_id}`,
  columns: [
    {header: 'KEY', get: (r) => r.key},
    {header: 'DESIRED', get: (r) => r.desired},
    {header: 'REPORTED', get: (r) => r.reported},
    {header: 'DELTA', get: (r) => r.delta},
  ],
}
