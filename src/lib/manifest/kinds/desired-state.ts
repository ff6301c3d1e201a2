import {applyUpdate, emptyDocument, jsonEqual, KEY_PATTERN, setDesiredPatches, type Json, type JsonObject, type ShadowDocument} from '../../shadow/index.js'
import type {PoolClient} from '../../db/pool.js'
import {API_VERSION, type KindHandler, type ManifestDocument, type ManifestObject, type OperationContext, type Queryable, type Zod} from '../types.js'
import {groupMembers} from './members.js'

export interface DesiredStateSpec {
  device?: string
  group?: string
  desired: JsonObject
}

export interface DesiredStateLive {
  name: string
  target_device: string | null
  target_group: string | null
  desired: JsonObject
  labels: Record<string, string>
}

interface Declared {
  name: string
  device?: string
  group?: string
  desired: JsonObject
}

const PATCHES = 'DesiredState.patches'
const EFFECTIVE = 'DesiredState.effective'
const UNMET = 'DesiredState.unmet'

const spec = (z: Zod) => z.strictObject({
  device: z.string().optional().describe('the device (its id) these values are for; or give group'),
  group: z.string().optional().describe('the DeviceGroup whose devices get these values; or give device'),
  desired: z.record(z.string().regex(KEY_PATTERN, {error: 'expected a shadow key: letters, digits, "_" and "-" (at most 64)'}), z.unknown())
    .describe('desired shadow values, merged into each target\'s desired state'),
})

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Objects merge key by key, anything else replaces: later declarations win. */
function merge(base: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = {...base}
  for (const [key, value] of Object.entries(patch)) out[key] = isObject(value) && isObject(out[key]) ? merge(out[key] as JsonObject, value) : value
  return out
}

/** The leaves of `ours` a device still holds (equal values), as null deletions, except those `keep` declares. */
function removal(ours: JsonObject, current: JsonObject, keep: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const [key, value] of Object.entries(ours)) {
    if (isObject(value) && isObject(current[key])) {
      const nested = removal(value, current[key] as JsonObject, isObject(keep[key]) ? keep[key] as JsonObject : {})
      if (Object.keys(nested).length > 0) out[key] = nested
    } else if (!(key in keep) && jsonEqual(value as Json, current[key])) {
      out[key] = null
    }
  }
  return out
}

/**
 * A desired state holds a patch when merging it would change nothing: every leaf of the patch is
 * there with an equal value (patches hold no nulls: check() refuses them). The same answer as
 * applyUpdate and a comparison, without building a new document per device.
 */
function holds(desired: JsonObject, patch: JsonObject): boolean {
  return Object.entries(patch).every(([key, value]) => isObject(value) && isObject(desired[key])
    ? holds(desired[key] as JsonObject, value)
    : !isObject(value) && jsonEqual(value, desired[key]))
}

function nullLeaf(value: unknown, path: string[]): string[] | undefined {
  if (value === null) return path
  if (isObject(value)) for (const [k, v] of Object.entries(value)) {
    const found = nullLeaf(v, [...path, k])
    if (found) return found
  }
  return undefined
}

const rowsOf = async (q: Queryable, where: string, values: unknown[]) => (await q.query<DesiredStateLive>(
  `SELECT name, target_device, target_group, desired, labels FROM desired_states ${where} ORDER BY name`, values)).rows

/**
 * Group-wide values first, device-specific ones over them (each in name order), so a device may
 * override its group and re-applying converges instead of flip-flopping.
 */
const precedence = (a: Declared, b: Declared) => Number(Boolean(a.device)) - Number(Boolean(b.device)) || (a.name < b.name ? -1 : 1)

/**
 * The values every device targeted by the files' DesiredStates must hold: all declarations that
 * reach it (live ones the files do not replace included), merged by precedence. Stores the patches
 * of devices that do not hold them yet, for apply, and per object how many such devices it targets.
 */
async function plan(q: Queryable, ctx: OperationContext): Promise<void> {
  const inFiles = (ctx.objects as Array<ManifestObject<DesiredStateSpec>>).filter((o) => o.kind === 'DesiredState')
  const declared = new Map<string, Declared>()
  for (const r of await rowsOf(q, '', [])) {
    if (!ctx.deleting.has(`DesiredState/${r.name}`)) declared.set(r.name, {name: r.name, device: r.target_device ?? undefined, group: r.target_group ?? undefined, desired: r.desired})
  }
  for (const o of inFiles) declared.set(o.name, {name: o.name, ...o.spec})
  const groups = [...new Set([...declared.values()].flatMap((d) => (d.group ? [d.group] : [])))]
  const members = await groupMembers(q, groups, ctx)
  const targets = (d: Declared) => (d.device ? (ctx.deleting.has(`Device/${d.device}`) ? [] : [d.device]) : members.get(d.group!) ?? [])
  const affected = new Set(inFiles.flatMap((o) => targets(declared.get(o.name)!)))
  const effective = new Map<string, JsonObject>()
  for (const d of [...declared.values()].sort(precedence)) {
    for (const id of targets(d)) if (affected.has(id)) effective.set(id, merge(effective.get(id) ?? {}, d.desired))
  }
  const {rows} = await q.query<{device_id: string; document: ShadowDocument}>('SELECT device_id, document FROM shadows WHERE device_id = ANY($1::text[])', [[...affected]])
  const docs = new Map(rows.map((r) => [r.device_id, r.document]))
  const patches = new Map<string, JsonObject>()
  for (const [id, patch] of effective) if (!holds((docs.get(id) ?? emptyDocument()).state.desired, patch)) patches.set(id, patch)
  ctx.memo.set(PATCHES, patches)
  ctx.memo.set(EFFECTIVE, effective)
  ctx.memo.set(UNMET, new Map(inFiles.map((o) => [o.name, targets(declared.get(o.name)!).filter((id) => patches.has(id)).length])))
}

function document(name: string, labels: Record<string, string>, target: {device?: string | null; group?: string | null}, desired: JsonObject): ManifestDocument {
  return {apiVersion: API_VERSION, kind: 'DesiredState', metadata: Object.keys(labels).length > 0 ? {name, labels} : {name},
    spec: {...(target.device ? {device: target.device} : {group: target.group}), desired}}
}

async function removeValues(client: PoolClient, entries: Array<{live?: DesiredStateLive}>, ctx: OperationContext): Promise<void> {
  const lives = entries.map((e) => e.live!).filter(Boolean)
  const members = await groupMembers(client, [...new Set(lives.flatMap((l) => (l.target_group ? [l.target_group] : [])))], {...ctx, objects: []})
  const ours = new Map<string, JsonObject>()
  for (const l of lives) {
    for (const id of l.target_device ? [l.target_device] : members.get(l.target_group!) ?? []) ours.set(id, merge(ours.get(id) ?? {}, l.desired))
  }
  if (ours.size === 0) return
  const {rows} = await client.query<{device_id: string; document: ShadowDocument}>('SELECT device_id, document FROM shadows WHERE device_id = ANY($1::text[])', [[...ours.keys()]])
  const keep = (ctx.memo.get(EFFECTIVE) as Map<string, JsonObject> | undefined) ?? new Map()
  const patches = new Map<string, JsonObject>()
  for (const r of rows) {
    const patch = removal(ours.get(r.device_id)!, r.document.state.desired, keep.get(r.device_id) ?? {})
    if (Object.keys(patch).length > 0) patches.set(r.device_id, patch)
  }
  await setDesiredPatches(client, patches, {actor: ctx.actor, now: ctx.now})
}

export const desiredStateKind: KindHandler<DesiredStateSpec, DesiredStateLive> = {
  kind: 'DesiredState',
  resource: 'desiredstate',
  aliases: ['desiredstates', 'desired'],
  order: 30,
  spec: spec as unknown as KindHandler<DesiredStateSpec>['spec'],
  check(object) {
    const {device, group, desired} = object.spec
    if (device !== undefined && group !== undefined) return [{at: ['spec', 'group'], path: 'spec.group', message: 'expected exactly one of device or group, not both'}]
    if (device === undefined && group === undefined) return [{at: ['spec'], path: 'spec', message: 'expected exactly one of device or group'}]
    const nullAt = nullLeaf(desired, [])
    if (nullAt) return [{at: ['spec', 'desired', ...nullAt], path: `spec.desired.${nullAt.join('.')}`, message: 'null is not a desired value; remove the key instead'}]
    if (Object.keys(desired).length === 0) return [{at: ['spec', 'desired'], path: 'spec.desired', message: 'expected at least one desired value'}]
    const outcome = applyUpdate(emptyDocument(), {state: {desired}}, 0)
    if (!outcome.ok) return [{at: ['spec', 'desired'], path: `spec.desired${outcome.path ? ` (${outcome.path})` : ''}`, message: outcome.message}]
    return []
  },
  references: (object) => object.spec.device
    ? [{kind: 'Device', name: object.spec.device, at: ['spec', 'device']}]
    : [{kind: 'DeviceGroup', name: object.spec.group!, at: ['spec', 'group']}],
  async loadLive(q, names, ctx) {
    const live = new Map((await rowsOf(q, 'WHERE name = ANY($1::text[])', [names])).map((r) => [r.name, r]))
    if (ctx.objects.some((o) => o.kind === 'DesiredState')) await plan(q, ctx)
    return live
  },
  async listNames(q) {
    return (await q.query<{name: string}>('SELECT name FROM desired_states ORDER BY name')).rows.map((r) => r.name)
  },
  exportLive: (live) => document(live.name, live.labels, {device: live.target_device, group: live.target_group}, live.desired),
  canonical: (object) => document(object.name, object.labels, object.spec, object.spec.desired),
  pending(object, _live, ctx) {
    const unmet = (ctx.memo.get(UNMET) as Map<string, number> | undefined)?.get(object.name) ?? 0
    return unmet > 0 ? [`shadows: ${unmet} device${unmet === 1 ? ' does' : 's do'} not hold these desired values yet`] : []
  },
  async apply(client, entries, ctx) {
    const rows = entries.filter((e) => e.specChanged).map((e) => ({name: e.name, target_device: e.object!.spec.device ?? null,
      target_group: e.object!.spec.group ?? null, desired: e.object!.spec.desired, labels: e.object!.labels}))
    if (rows.length > 0) {
      await client.query(`INSERT INTO desired_states (name, target_device, target_group, desired, labels)
        SELECT r.name, r.target_device, r.target_group, r.desired, r.labels
        FROM jsonb_to_recordset($1::jsonb) AS r(name text, target_device text, target_group text, desired jsonb, labels jsonb)
        ON CONFLICT (name) DO UPDATE SET target_device = EXCLUDED.target_device, target_group = EXCLUDED.target_group,
          desired = EXCLUDED.desired, labels = EXCLUDED.labels, updated_at = now()`, [JSON.stringify(rows)])
    }
    // The values an update no longer declares leave the devices too (before the new ones are merged in).
    const replaced = entries.filter((e) => e.live && e.specChanged)
    if (replaced.length > 0) await removeValues(client, replaced, ctx)
    const patches = (ctx.memo.get(PATCHES) as Map<string, JsonObject> | undefined) ?? new Map()
    await setDesiredPatches(client, patches, {actor: ctx.actor, now: ctx.now})
  },
  async delete(client, entries, ctx) {
    await removeValues(client, entries, ctx)
    await client.query('DELETE FROM desired_states WHERE name = ANY($1::text[])', [entries.map((e) => e.name)])
  },
}
