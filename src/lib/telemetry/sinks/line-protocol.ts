import {pointNs, type TelemetryPoint} from '../payload.js'

/** The measurement every telemetry line goes to (one field per metric). */
export const MEASUREMENT = 'telemetry'

/** Tags of one device besides `device`: `type` and the chosen labels. */
export type DeviceTags = Record<string, string>

// Line protocol escaping (docs.influxdata.com, line protocol reference): commas, equals signs and
// spaces in tag keys, tag values and field keys; a newline cannot be escaped, so it becomes a space.
const SPECIAL = /[,= \\\n\r]/
const escape = (text: string) => (SPECIAL.test(text) ? text.replace(/[\n\r]/g, ' ').replace(/([,= \\])/g, '\\$1') : text)

function tagSet(device: string, tags: DeviceTags | undefined): string {
  const all: Array<[string, string]> = [['device', device]]
  for (const [key, value] of Object.entries(tags ?? {})) if (value !== '') all.push([key, value])
  // Sorted by key, as InfluxDB stores series keys (it then skips its own sort).
  all.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return all.map(([k, v]) => `${escape(k)}=${escape(v)}`).join(',')
}

/**
 * One line per device and timestamp, all of its metrics as float fields, the device's own
 * timestamp in nanoseconds (exact: from the payload's digits, never through a float). A metric
 * repeated for the same device and time keeps its last value (InfluxDB would overwrite anyway).
 */
export function toLineProtocol(points: TelemetryPoint[], tagsOf: (device: string) => DeviceTags | undefined): string[] {
  const lines = new Map<string, {device: string; ns: string; fields: Map<string, number>}>()
  for (const p of points) {
    // Keyed by the timestamp text: the metrics of one message share it, so it is converted once per line.
    const key = `${p.device_id} ${p.ns ?? p.ts}`
    let line = lines.get(key)
    if (!line) lines.set(key, (line = {device: p.device_id, ns: pointNs(p), fields: new Map()}))
    line.fields.set(p.metric, p.value)
  }
  const tagSets = new Map<string, string>()
  const out: string[] = []
  for (const {device, ns, fields} of lines.values()) {
    let tags = tagSets.get(device)
    if (tags === undefined) tagSets.set(device, (tags = tagSet(device, tagsOf(device))))
    let fieldSet = ''
    for (const [metric, value] of fields) fieldSet += `${fieldSet ? ',' : ''}${escape(metric)}=${value}`
    out.push(`${MEASUREMENT},${tags} ${fieldSet} ${ns}`)
  }
  return out
}
