import satisfies from 'semver/functions/satisfies.js'
import type {Requirement} from '../core/selector.js'

/** What a selector looks at: the fields of selector-sql.ts's columns, in memory. */
export interface SelectableDevice {
  device_type: string
  status: string
  firmware_version: string | null
  labels: Record<string, string>
}

/**
 * The same test as compileSelector's SQL, for devices that exist only in memory (a manifest that
 * registers devices and selects them in one apply). A missing label or firmware never equals a
 * value, and negations match it, as `NOT COALESCE(…, false)` does in SQL.
 */
export function matchesSelector(requirements: Requirement[], device: SelectableDevice): boolean {
  return requirements.every((req) => {
    const value = valueOf(req, device)
    let hit: boolean
    switch (req.kind) {
      // On firmware, `=` and `in` take semver ranges, as compileFirmwareRange does.
      case 'equals': hit = value !== undefined && (isFirmware(req) ? satisfies(value, req.value) : value === req.value); break
      case 'in': hit = value !== undefined && (isFirmware(req) ? req.values.some((range) => satisfies(value, range)) : req.values.includes(value)); break
      case 'exists': hit = value !== undefined; break
      case 'range': hit = value !== undefined && satisfies(value, req.range); break
    }
    return req.negate ? !hit : hit
  })
}

const isFirmware = (req: Requirement) => req.field && req.key === 'firmware'

function valueOf(req: Requirement, device: SelectableDevice): string | undefined {
  if (!req.field) return device.labels[req.key]
  if (req.key === 'type') return device.device_type
  if (req.key === 'status') return device.status
  return device.firmware_version ?? undefined
}
