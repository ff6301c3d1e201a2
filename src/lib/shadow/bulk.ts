import {invalidInput} from '../core/errors.js'
import type {PoolClient} from '../db/pool.js'
import {applyUpdate, computeDelta, DEFAULT_LIMITS, emptyDocument, jsonEqual, oldestPending, type JsonObject, type ShadowDocument, type ShadowLimits} from './document.js'

/** NOTIFY channel: payload = comma-separated device ids whose delta changed (sent on commit). */
export const SHADOW_CHANNEL = 'iotctl_shadow'
/** NOTIFY channel: ids of devices whose document changed at all (for `shadow watch`). */
export const SHADOW_CHANGED_CHANNEL = 'iotctl_shadow_changed'
/** Ids per NOTIFY: PostgreSQL caps a payload below 8,000 bytes; ids have up to 64 characters. */
const IDS_PER_NOTIFY = 100

export const pendingSince = (document: ShadowDocument) => {
  const seconds = oldestPending(document)
  return seconds === undefined ? null : new Date(seconds * 1000).toISOString()
}

export async function notify(client: PoolClient, channel: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  await client.query(`SELECT pg_notify($1, string_agg(id, ',')) FROM (
    SELECT id, (row_number() OVER () - 1) / ${IDS_PER_NOTIFY} AS chunk FROM unnest($2::text[]) AS id) t GROUP BY chunk`, [channel, ids])
}

export interface DesiredRow {
  device_id: string
  document: ShadowDocument
}

export interface BulkContext {
  actor: string
  now: number
  limits: ShadowLimits
}

/**
 * Apply a desired patch to locked shadow rows inside the caller's transaction: documents that
 * already hold the values are left alone (no new version); the others are written, recorded in
 * shadow_history and announced (NOTIFY, delivered only on commit: the sync service publishes the
 * deltas after it). A rejected patch is exit 4 and the caller's transaction rolls back.
 */
export async function writeDesired(client: PoolClient, rows: DesiredRow[], patchOf: (id: string) => JsonObject, context: BulkContext): Promise<{changed: string[]; unchanged: number}> {
  const updates: Array<{device_id: string; document: ShadowDocument; version: number; pending_since: string | null; change: unknown}> = []
  const deltaIds: string[] = []
  let unchanged = 0
  for (const row of rows) {
    const outcome = applyUpdate(row.document, {state: {desired: patchOf(row.device_id)}}, context.now, context.limits)
    if (!outcome.ok) {
      throw invalidInput(outcome.code === 413 ? 'E_SHADOW_TOO_LARGE' : 'E_SHADOW_INVALID', `device ${row.device_id}: ${outcome.path ? `${outcome.path}: ` : ''}${outcome.message}`, {
        hint: 'nothing was changed on any device; fix the values and run it again',
      })
    }
    if (jsonEqual(outcome.document.state.desired, row.document.state.desired)) {
      unchanged++
      continue
    }
    const doc = outcome.document
    updates.push({device_id: row.device_id, document: doc, version: doc.version, pending_since: pendingSince(doc), change: {state: outcome.applied.state}})
    if (!jsonEqual(computeDelta(row.document.state.desired, row.document.state.reported), doc.state.delta)) deltaIds.push(row.device_id)
  }
  if (updates.length > 0) {
    await client.query(`UPDATE shadows s SET document = u.document, version = u.version, pending_since = u.pending_since, updated_at = now()
      FROM jsonb_to_recordset($1::jsonb) AS u(device_id text, document jsonb, version bigint, pending_since timestamptz)
      WHERE s.device_id = u.device_id`, [JSON.stringify(updates)])
    await client.query(`INSERT INTO shadow_history (device_id, version, actor, change, document)
      SELECT device_id, version, $2, change, document FROM jsonb_to_recordset($1::jsonb) AS u(device_id text, version bigint, change jsonb, document jsonb)`,
    [JSON.stringify(updates), context.actor])
    await notify(client, SHADOW_CHANNEL, deltaIds)
    await notify(client, SHADOW_CHANGED_CHANNEL, updates.map((u) => u.device_id))
  }
  return {changed: updates.map((u) => u.device_id), unchanged}
}

/**
 * Desired patches for listed devices (each its own), inside the caller's transaction: shadows are
 * created where missing, locked in id order (no deadlock with another bulk writer), then written
 * by writeDesired. Deprovisioned devices are skipped: their shadows are read-only.
 */
export async function setDesiredPatches(client: PoolClient, patches: Map<string, JsonObject>, options: {actor: string; now?: number; limits?: ShadowLimits; chunk?: number}): Promise<{changed: string[]; unchanged: number}> {
  const ids = [...patches.keys()].sort()
  const context = {actor: options.actor, now: options.now ?? Date.now(), limits: options.limits ?? DEFAULT_LIMITS}
  const chunk = options.chunk ?? 2000
  const result = {changed: [] as string[], unchanged: 0}
  for (let i = 0; i < ids.length; i += chunk) {
    const batch = ids.slice(i, i + chunk)
    await client.query(`INSERT INTO shadows (device_id, document, version)
      SELECT device_id, $2::jsonb, 0 FROM devices WHERE device_id = ANY($1::text[]) AND status <> 'deprovisioned'
      ON CONFLICT (device_id) DO NOTHING`, [batch, emptyDocument()])
    const {rows} = await client.query<DesiredRow>(`SELECT s.device_id, s.document FROM shadows s JOIN devices d USING (device_id)
      WHERE s.device_id = ANY($1::text[]) AND d.status <> 'deprovisioned' ORDER BY s.device_id FOR UPDATE OF s`, [batch])
    const written = await writeDesired(client, rows, (id) => patches.get(id)!, context)
    result.changed.push(...written.changed)
    result.unchanged += written.unchanged
  }
  return result
}
