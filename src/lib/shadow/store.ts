import {conflict, invalidInput, notFound} from '../core/errors.js'
import {assertDeviceId} from '../core/device-id.js'
import {withTransaction, type Database, type PoolClient} from '../db/pool.js'
import {deviceSelectionSql} from '../registry/index.js'
import {
  applyUpdate, DEFAULT_LIMITS, emptyDocument, jsonEqual,
  type Accepted, type JsonObject, type Rejection, type ShadowDocument, type ShadowLimits, type ShadowUpdate,
} from './document.js'
import {pendingSince, setDesiredPatches, SHADOW_CHANGED_CHANNEL, SHADOW_CHANNEL, writeDesired} from './bulk.js'

export {SHADOW_CHANGED_CHANNEL, SHADOW_CHANNEL} from './bulk.js'

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

/**
 * Set the same desired values on the given devices inside the caller's transaction (the rollout
 * controller commits an assignment and its desired `firmware` together). Returns how many changed.
 */
export async function setDesiredForDevices(client: PoolClient, ids: string[], desired: JsonObject, context: UpdateContext): Promise<number> {
  if (ids.length === 0) return 0
  const written = await setDesiredPatches(client, new Map(ids.map((id) => [id, desired])), {actor: context.actor, now: context.now, limits: context.limits, chunk: 5000})
  return written.changed.length
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
      const written = await writeDesired(client, rows, () => desired, {actor: context.actor, now, limits})
      result.changed += written.changed.length
      result.unchanged += written.unchanged
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
