import {conflict, invalidInput, notFound} from '../core/errors.js'
import {assertDeviceId} from '../core/device-id.js'
import {withTransaction, type Database, type PoolClient} from '../db/pool.js'
import {deviceSelectionSql} from '../registry/index.js'
import {
  applyUpdate, computeDelta, DEFAULT_LIMITS, emptyDocument, jsonEqual, oldestPending,
  type Accepted, type JsonObject, type Rejection, type ShadowDocument, type ShadowLimits, type ShadowUpdate,
} from './document.js'

/** NOTIFY channel: payload = comma-separated device ids whose delta changed (sent on commit). */
export const SHADOW_CHANNEL = 'iotctl_shadow'
/** NOTIFY channel: ids of devices whose document changed at all (for `shadow watch`). */
export const SHADOW_CHANGED_CHANNEL = 'iotctl_shadow_changed'
/** Ids per NOTIFY: PostgreSQL caps a payload below 8,000 bytes; ids have up to 64 characters. */
const IDS_PER_NOTIFY = 100

export interface UpdateContext {
  /** Who changed it: 'device', 'cli:alice', 'selector:alice'. */
  actor: string
  /** The caller publishes the new delta itself (the sync service, for devices' own updates): no NOTIFY for it. */
  callerPublishesDelta?: boolean
  limits?: ShadowLimits
  now?: number
}

export type UpdateOutcome = (Accepted & {deltaChanged: boolean}) | Rejection

const deviceMissing = (id: string) => notFound('E_DEVICE_NOT_FOUND', `device ${JSON.stringify(id)} not found`, {hint: 'list devices with `iotctl devices list`'})

/** The document of a device: an empty one (version 0) when nothing was ever set. */
export async function getShadow(db: Database, id: string): Promise<ShadowDocument> {
  assertDeviceId(id)
  const {rows} = await db.pool.query<{document: ShadowDocument | null}>(
    'SELECT s.document FROM devices d LEFT JOIN shadows s USING (device_id) WHERE d.device_id = $1', [id])
  if (rows.length === 0) throw deviceMissing(id)
  return rows[0]!.document ?? emptyDocument()
}

/** Whether a shadow row exists (a device that never had one gets `get/rejected` 404, as on AWS). */
export async function hasShadow(db: Database, id: string): Promise<boolean> {
  const {rowCount} = await db.pool.query('SELECT 1 FROM shadows WHERE device_id = $1', [id])
  return (rowCount ?? 0) > 0
}

async function lockDocument(client: PoolClient, id: string): Promise<ShadowDocument> {
  // The common case in one round trip: the shadow exists.
  const {rows: existing} = await client.query<{document: ShadowDocument; status: string}>(
    'SELECT s.document, d.status FROM shadows s JOIN devices d USING (device_id) WHERE s.device_id = $1 FOR UPDATE OF s', [id])
  if (existing.length > 0 && existing[0]!.status !== 'deprovisioned') return existing[0]!.document
  const {rows: device} = await client.query<{status: string}>('SELECT status FROM devices WHERE device_id = $1', [id])
  if (device.length === 0) throw deviceMissing(id)
  if (device[0]!.status === 'deprovisioned') {
    throw notFound('E_DEVICE_DEPROVISIONED', `device ${JSON.stringify(id)} is deprovisioned; its shadow is read-only`, {hint: 'register a new device id instead'})
  }
  await client.query(`INSERT INTO shadows (device_id, document, version) VALUES ($1, $2, 0) ON CONFLICT (device_id) DO NOTHING`, [id, emptyDocument()])
  const {rows} = await client.query<{document: ShadowDocument}>('SELECT document FROM shadows WHERE device_id = $1 FOR UPDATE', [id])
  return rows[0]!.document
}

const pendingSince = (document: ShadowDocument) => {
  const seconds = oldestPending(document)
  return seconds === undefined ? null : new Date(seconds * 1000).toISOString()
}

async function notify(client: PoolClient, channel: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return
  await client.query(`SELECT pg_notify($1, string_agg(id, ',')) FROM (
    SELECT id, (row_number() OVER () - 1) / ${IDS_PER_NOTIFY} AS chunk FROM unnest($2::text[]) AS id) t GROUP BY chunk`, [channel, ids])
}

/**
 * Apply one update in one transaction under the row lock. A rejection (version conflict, limits,
 * shape) changes nothing. When the delta changed, a NOTIFY tells the sync service to publish it
 * (PostgreSQL delivers it only if the transaction commits).
 */
export async function updateShadow(db: Database, id: string, update: ShadowUpdate, context: UpdateContext): Promise<UpdateOutcome> {
  assertDeviceId(id)
  let rejected: Rejection | undefined
  return withTransaction(db.pool, db.url, async (client) => {
    const current = await lockDocument(client, id)
    const outcome = applyUpdate(current, update, context.now ?? Date.now(), context.limits ?? DEFAULT_LIMITS)
    if (!outcome.ok) {
      rejected = outcome
      throw ROLL_BACK // not even the empty row lockDocument may have created stays
    }
    const doc = outcome.document
    const deltaChanged = !jsonEqual(current.state.delta, doc.state.delta)
    // Write, record and announce in one statement (one round trip instead of four).
    await client.query(`WITH u AS (UPDATE shadows SET document = $2, version = $3, pending_since = $4, updated_at = now() WHERE device_id = $1),
      h AS (INSERT INTO shadow_history (device_id, version, actor, change, document) VALUES ($1, $3, $5, $6, $2))
      SELECT pg_notify($7, $1), CASE WHEN $8 THEN pg_notify($9, $1) END`,
    [id, doc, doc.version, pendingSince(doc), context.actor, {state: outcome.applied.state}, SHADOW_CHANGED_CHANNEL,
      deltaChanged && !context.callerPublishesDelta, SHADOW_CHANNEL])
    return {...outcome, deltaChanged} as UpdateOutcome
  }).catch((error: unknown) => {
    if (error === ROLL_BACK && rejected) return rejected
    throw error
  })
}

const ROLL_BACK = new Error('rejected update: roll back')

/** Map a rejection to the CLI's typed errors: 409 → exit 5 with the current version, else exit 4. */
export function rejectionError(rejection: Rejection): Error {
  if (rejection.code === 409) {
    return conflict('E_SHADOW_VERSION', rejection.message, {
      hint: `read the document again (\`iotctl shadow get\`) and retry with --expected-version ${rejection.currentVersion}`,
      data: {current_version: rejection.currentVersion},
    })
  }
  return invalidInput(rejection.code === 413 ? 'E_SHADOW_TOO_LARGE' : 'E_SHADOW_INVALID', `${rejection.path ? `${rejection.path}: ` : ''}${rejection.message}`, {
    hint: rejection.code === 413 ? 'remove keys (set them to null) or store bulky data elsewhere' : 'fix the value and run it again; nothing was changed',
  })
}

export interface BulkResult {
  matched: number
  changed: number
  unchanged: number
}

type LockedRow = {device_id: string; document: ShadowDocument}

/**
 * Merge `desired` into shadows already locked in the caller's transaction; writes the changed
 * documents, their history and the NOTIFYs (delivered at commit). Returns how many changed.
 */
async function applyDesiredToRows(client: PoolClient, rows: LockedRow[], desired: JsonObject, context: UpdateContext & {now: number; limits: ShadowLimits}): Promise<number> {
  const {now, limits} = context
  const updates: Array<{device_id: string; document: ShadowDocument; version: number; pending_since: string | null; change: unknown}> = []
  const notifyIds: string[] = []
  for (const row of rows) {
    const outcome = applyUpdate(row.document, {state: {desired}}, now, limits)
    if (!outcome.ok) {
      throw invalidInput(outcome.code === 413 ? 'E_SHADOW_TOO_LARGE' : 'E_SHADOW_INVALID', `device ${row.device_id}: ${outcome.path ? `${outcome.path}: ` : ''}${outcome.message}`, {
        hint: 'nothing was changed on any device; fix the values and run it again',
      })
    }
    if (jsonEqual(outcome.document.state.desired, row.document.state.desired)) continue
    const doc = outcome.document
    updates.push({device_id: row.device_id, document: doc, version: doc.version, pending_since: pendingSince(doc), change: {state: outcome.applied.state}})
    if (!jsonEqual(computeDelta(row.document.state.desired, row.document.state.reported), doc.state.delta)) notifyIds.push(row.device_id)
  }
  if (updates.length === 0) return 0
  await client.query(`UPDATE shadows s SET document = u.document, version = u.version, pending_since = u.pending_since, updated_at = now()
    FROM jsonb_to_recordset($1::jsonb) AS u(device_id text, document jsonb, version bigint, pending_since timestamptz)
    WHERE s.device_id = u.device_id`, [JSON.stringify(updates)])
  await client.query(`INSERT INTO shadow_history (device_id, version, actor, change, document)
    SELECT device_id, version, $2, change, document FROM jsonb_to_recordset($1::jsonb) AS u(device_id text, version bigint, change jsonb, document jsonb)`,
  [JSON.stringify(updates), context.actor])
  await notify(client, SHADOW_CHANNEL, notifyIds)
  await notify(client, SHADOW_CHANGED_CHANNEL, updates.map((u) => u.device_id))
  return updates.length
}

/**
 * Set desired values on the given devices inside the caller's transaction (the rollout controller
 * commits an assignment and its desired `firmware` together). Devices without a shadow get one.
 */
export async function setDesiredForDevices(client: PoolClient, ids: string[], desired: JsonObject, context: UpdateContext): Promise<number> {
  if (ids.length === 0) return 0
  await client.query(`INSERT INTO shadows (device_id, document, version) SELECT unnest($1::text[]), $2::jsonb, 0
    ON CONFLICT (device_id) DO NOTHING`, [ids, emptyDocument()])
  const {rows} = await client.query<LockedRow>('SELECT device_id, document FROM shadows WHERE device_id = ANY($1::text[]) ORDER BY device_id FOR UPDATE', [ids])
  return applyDesiredToRows(client, rows, desired, {...context, now: context.now ?? Date.now(), limits: context.limits ?? DEFAULT_LIMITS})
}

/**
 * Set desired state for every device a selection matches, in one transaction (all or none), in
 * chunks under row locks. Devices whose desired state already holds the values are left alone
 * (no new version), so re-running is idempotent. The sync service publishes the deltas after the
 * commit, in batches, from the NOTIFYs.
 */
export async function setDesiredForSelection(db: Database, selection: {selector?: string; type?: string}, desired: JsonObject, context: UpdateContext & {chunk?: number}): Promise<BulkResult> {
  const params: unknown[] = []
  const where = deviceSelectionSql({...selection, status: undefined}, params)
  const chunk = context.chunk ?? 2000
  const now = context.now ?? Date.now()
  const limits = context.limits ?? DEFAULT_LIMITS
  return withTransaction(db.pool, db.url, async (client) => {
    await client.query(`INSERT INTO shadows (device_id, document, version)
      SELECT device_id, $${params.length + 1}::jsonb, 0 FROM devices WHERE ${where} AND status <> 'deprovisioned'
      ON CONFLICT (device_id) DO NOTHING`, [...params, emptyDocument()])
    const result: BulkResult = {matched: 0, changed: 0, unchanged: 0}
    let after = ''
    for (;;) {
      const {rows} = await client.query<{device_id: string; document: ShadowDocument}>(
        // Keyset on the devices side of the join: each chunk costs the same (an IN (subquery) re-read the selection every time).
        `SELECT device_id, s.document FROM devices d JOIN shadows s USING (device_id)
         WHERE ${where} AND d.status <> 'deprovisioned' AND d.device_id > $${params.length + 1}
         ORDER BY d.device_id LIMIT ${chunk} FOR UPDATE OF s`, [...params, after])
      if (rows.length === 0) break
      after = rows.at(-1)!.device_id
      result.matched += rows.length
      const changed = await applyDesiredToRows(client, rows, desired, {...context, now, limits})
      result.changed += changed
      result.unchanged += rows.length - changed
    }
    return result
  })
}

export interface HistoryEntry {
  version: number
  actor: string
  at: string
  change: unknown
}

export async function shadowHistory(db: Database, id: string, limit = 50): Promise<HistoryEntry[]> {
  await getShadow(db, id) // exit 3 for an unknown device
  const {rows} = await db.pool.query<{version: string; actor: string; at: Date; change: unknown}>(
    'SELECT version, actor, at, change FROM shadow_history WHERE device_id = $1 ORDER BY version DESC LIMIT $2', [id, limit])
  return rows.map((r) => ({version: Number(r.version), actor: r.actor, at: r.at.toISOString(), change: r.change}))
}

export interface DriftEntry {
  device_id: string
  version: number
  pending_since: string
  delta: JsonObject
}

/** Devices whose desired state has been unmet since before `olderThanSeconds` ago. */
export async function listDrift(db: Database, options: {selector?: string; type?: string; olderThanSeconds: number; limit?: number}): Promise<DriftEntry[]> {
  const params: unknown[] = []
  const where = deviceSelectionSql({selector: options.selector, type: options.type}, params)
  params.push(options.olderThanSeconds, options.limit ?? 10_000)
  const {rows} = await db.pool.query<{device_id: string; version: string; pending_since: Date; delta: JsonObject}>(
    `SELECT s.device_id, s.version, s.pending_since, s.document->'state'->'delta' AS delta
     FROM shadows s
     WHERE s.pending_since IS NOT NULL AND s.pending_since < now() - make_interval(secs => $${params.length - 1})
       AND s.device_id IN (SELECT device_id FROM devices WHERE ${where} AND status <> 'deprovisioned')
     ORDER BY s.pending_since, s.device_id LIMIT $${params.length}`, params)
  return rows.map((r) => ({device_id: r.device_id, version: Number(r.version), pending_since: r.pending_since.toISOString(), delta: r.delta}))
}

/** The documents of the versions after `afterVersion`, oldest first (for `shadow watch`). */
export async function shadowVersionsAfter(db: Database, id: string, afterVersion: number): Promise<ShadowDocument[]> {
  const {rows} = await db.pool.query<{document: ShadowDocument}>(
    'SELECT document FROM shadow_history WHERE device_id = $1 AND version > $2 ORDER BY version', [id, afterVersion])
  return rows.map((r) => r.document)
}

/** Current documents of several devices (for publishing deltas after a NOTIFY). */
export async function shadowsOf(db: Database, ids: string[]): Promise<Map<string, ShadowDocument>> {
  const {rows} = await db.pool.query<{device_id: string; document: ShadowDocument}>('SELECT device_id, document FROM shadows WHERE device_id = ANY($1::text[])', [ids])
  return new Map(rows.map((r) => [r.device_id, r.document]))
}
