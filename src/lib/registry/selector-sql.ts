import type {Requirement} from '../core/selector.js'
import {compileFirmwareRange} from './firmware-key.js'

/**
 * Compiles parsed selector requirements (core/selector.ts) into a WHERE fragment over `devices`:
 *
 *   labels        jsonb NOT NULL        GIN index (jsonb_ops: serves @> and ?)
 *   device_type   text NOT NULL
 *   status        text NOT NULL
 *   firmware_key  text COLLATE "C"      btree (NULL when a device has no firmware)
 *
 * User text only ever travels as parameters (`$n`, numbered after what `params` already holds).
 * Semantics follow Kubernetes label selectors
 * (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors):
 * `!=`, `notin` and `!k` also match devices that lack the label.
 */
export const SELECTOR_COLUMNS = {
  labels: 'labels',
  type: 'device_type',
  status: 'status',
  firmware: 'firmware_key',
} as const

export function compileSelector(requirements: Requirement[], params: unknown[]): string {
  if (requirements.length === 0) return 'TRUE'
  return requirements.map((requirement) => compileRequirement(requirement, params)).join(' AND ')
}

function compileRequirement(requirement: Requirement, params: unknown[]): string {
  if (requirement.kind === 'range') return firmwareCondition([requirement.range], requirement.negate, params)
  if (!requirement.field) return labelCondition(requirement, params)
  if (requirement.kind === 'exists') {
    // The parser refuses this; a hand-built requirement gets a clear bug report, not wrong SQL.
    throw new Error(`compileSelector: field "${requirement.key}" cannot be tested for existence`)
  }
  const values = requirement.kind === 'equals' ? [requirement.value] : requirement.values
  if (requirement.key === 'firmware') return firmwareCondition(values, requirement.negate, params)
  if (requirement.key === 'type' || requirement.key === 'status') {
    return columnCondition(SELECTOR_COLUMNS[requirement.key], requirement, params)
  }
  throw new Error(`compileSelector: unknown field "${requirement.key}"`)
}

/**
 * Label tests written so the GIN index applies: equality is containment (`labels @> '{"k":"v"}'`),
 * a set is containment of any of several one-pair objects (a bitmap index scan per element), and
 * existence is the `?` operator.
 */
function labelCondition(requirement: Exclude<Requirement, {kind: 'range'}>, params: unknown[]): string {
  const column = SELECTOR_COLUMNS.labels
  let condition: string
  switch (requirement.kind) {
    case 'equals': {
      params.push(JSON.stringify({[requirement.key]: requirement.value}))
      condition = `${column} @> $${params.length}::jsonb`
      break
    }
    case 'in': {
      params.push(requirement.values.map((value) => JSON.stringify({[requirement.key]: value})))
      condition = `${column} @> ANY($${params.length}::jsonb[])`
      break
    }
    case 'exists': {
      params.push(requirement.key)
      condition = `${column} ? $${params.length}`
      break
    }
  }
  return requirement.negate ? `NOT (${condition})` : condition
}

/** `type` and `status`: plain equality on NOT NULL text columns. */
function columnCondition(
  column: string,
  requirement: Extract<Requirement, {kind: 'equals' | 'in'}>,
  params: unknown[],
): string {
  if (requirement.kind === 'equals') {
    params.push(requirement.value)
    return `${column} ${requirement.negate ? '<>' : '='} $${params.length}`
  }
  params.push(requirement.values)
  const condition = `${column} = ANY($${params.length}::text[])`
  return requirement.negate ? `NOT (${condition})` : condition
}

/**
 * One or more semver ranges, OR-ed (`firmware in (R1,R2)` is `R1 || R2`). A device without
 * firmware (NULL key) never satisfies a range, so it does match the negation — the same choice
 * Kubernetes makes for `!=` on a missing label: `firmware!=2.4.0` lists devices with no firmware.
 */
function firmwareCondition(ranges: string[], negate: boolean, params: unknown[]): string {
  const column = SELECTOR_COLUMNS.firmware
  const compiled = ranges.map((range) => compileFirmwareRange(range, column, params))
  const condition = compiled.length === 1 ? (compiled[0] as string) : `(${compiled.join(' OR ')})`
  return negate ? `NOT COALESCE(${condition}, false)` : condition
}
