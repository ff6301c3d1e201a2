import {conflict} from '../core/errors.js'
import {jsonEqual, type Json} from '../shadow/index.js'
import {formatPath, formatPosition, manifestErrors} from './issues.js'
import {kindByName, KINDS} from './kinds/index.js'
import type {CheckWorld, KindHandler, ManifestIssue, ManifestObject, OperationContext, PlanEntry} from './types.js'

/** Live state per kind: kind → name → the kind's live object. */
export type LiveState = Map<string, Map<string, unknown>>

export const keyOf = (kind: string, name: string) => `${kind}/${name}`

/**
 * Checks across documents, before any plan: the same object twice, each kind's own value checks,
 * and references to objects that exist neither in the files nor live. All problems at once (exit 4).
 */
export function checkObjects(objects: ManifestObject[], world: CheckWorld): void {
  const issues: ManifestIssue[] = []
  const seen = new Map<string, ManifestObject>()
  for (const object of objects) {
    const kind = kindByName(object.kind)!
    const key = keyOf(object.kind, object.name)
    const first = seen.get(key)
    if (first) {
      issues.push({position: object.source.at(['metadata', 'name']), path: 'metadata.name',
        message: `${kind.resource}/${object.name} is declared twice (first at ${formatPosition(first.source.at(['metadata', 'name']))}); expected each object once`})
    }
    seen.set(key, object)
    for (const problem of kind.check?.(object, world) ?? []) issues.push({position: object.source.at(problem.at), path: problem.path, message: problem.message})
    for (const ref of kind.references?.(object) ?? []) {
      if (!world.has(ref.kind, ref.name)) {
        const target = kindByName(ref.kind)
        issues.push({position: object.source.at(ref.at), path: formatPath(ref.at),
          message: `${target?.resource ?? ref.kind}/${ref.name} does not exist; expected a ${ref.kind} in these files or already applied`})
      }
    }
  }
  if (issues.length > 0) throw manifestErrors(issues)
}

const present = (kind: KindHandler, live: unknown) => live !== undefined && !kind.gone?.(live)

/**
 * The plan of an apply, pure: each object of the files is a create, an update (its spec differs, or
 * work is pending) or unchanged; each pruned name that is live is a delete. Objects the registry
 * cannot change (a deprovisioned device) stop the plan with exit 5.
 */
export function planApply(objects: ManifestObject[], live: LiveState, prune: Array<{kind: string; name: string}>, ctx: OperationContext): PlanEntry[] {
  const entries: PlanEntry[] = []
  const blocked: string[] = []
  for (const object of objects) {
    const kind = kindByName(object.kind)!
    const current = live.get(kind.kind)?.get(object.name)
    const why = current === undefined ? undefined : kind.blocked?.(current, 'apply')
    if (why) blocked.push(`${formatPosition(object.source.at(['metadata', 'name']))}: ${why}`)
    const reasons = kind.pending?.(object, current, ctx) ?? []
    const specChanged = current === undefined || !jsonEqual(kind.canonical(object, current) as unknown as Json, kind.exportLive(current) as unknown as Json)
    const action = current === undefined ? 'create' : specChanged || reasons.length > 0 ? 'update' : 'unchanged'
    entries.push({kind: kind.kind, resource: kind.resource, name: object.name, action, reasons, specChanged, object, live: current})
  }
  for (const {kind: kindName, name} of prune) {
    const kind = kindByName(kindName)!
    const current = live.get(kindName)?.get(name)
    const why = present(kind, current) ? kind.blocked?.(current, 'delete') : undefined
    if (why) blocked.push(`${kind.resource}/${name} (pruned): ${why}`)
    if (present(kind, current)) entries.push({kind: kindName, resource: kind.resource, name, action: 'delete', reasons: ['pruned: no longer in the files of this applyset'], specChanged: true, live: current})
  }
  if (blocked.length > 0) {
    throw conflict('E_MANIFEST_CONFLICT', `${blocked.length} object(s) cannot be applied or pruned; nothing was changed:\n  ${blocked.join('\n  ')}`, {hint: 'remove them from the files or rename them'})
  }
  return sortEntries(entries)
}

/** `delete -f`: every object of the files that is live becomes a delete; the others are already gone. */
export function planDelete(objects: ManifestObject[], live: LiveState): PlanEntry[] {
  const blocked: string[] = []
  const entries = objects.map((object) => {
    const kind = kindByName(object.kind)!
    const current = live.get(object.kind)?.get(object.name)
    const action = present(kind, current) ? 'delete' as const : 'unchanged' as const
    const why = action === 'delete' ? kind.blocked?.(current, 'delete') : undefined
    if (why) blocked.push(`${formatPosition(object.source.at(['metadata', 'name']))}: ${why}`)
    return {kind: object.kind, resource: kind.resource, name: object.name, action, reasons: action === 'delete' ? [] : ['not found'], specChanged: action === 'delete', object, live: current}
  })
  if (blocked.length > 0) {
    throw conflict('E_MANIFEST_CONFLICT', `${blocked.length} object(s) cannot be deleted; nothing was changed:\n  ${blocked.join('\n  ')}`, {hint: 'remove them from the files, or settle them first'})
  }
  return sortEntries(entries)
}

/** Kind order (the order of execution), then file order within a kind. */
function sortEntries(entries: PlanEntry[]): PlanEntry[] {
  const order = new Map(KINDS.map((k, i) => [k.kind, i]))
  return entries.map((e, i) => ({e, i})).sort((a, b) => order.get(a.e.kind)! - order.get(b.e.kind)! || a.i - b.i).map(({e}) => e)
}

export interface Summary {
  created: number
  configured: number
  unchanged: number
  deleted: number
}

export function summarize(entries: PlanEntry[]): Summary {
  const count = (action: string) => entries.filter((e) => e.action === action).length
  return {created: count('create'), configured: count('update'), unchanged: count('unchanged'), deleted: count('delete')}
}
