import {userInfo} from 'node:os'
import {faultPoint} from '../core/faults.js'
import {usageError} from '../core/errors.js'
import {connectClient, databaseUnavailable, isConnectionError, withTransaction, type Database, type PoolClient} from '../db/pool.js'
import type {DeviceIssuer} from '../pki/index.js'
import {formatPosition} from './issues.js'
import {kindByName, KINDS} from './kinds/index.js'
import {loadDocuments} from './load.js'
import {checkObjects, keyOf, planApply, planDelete, summarize, type LiveState, type Summary} from './plan.js'
import {validateDocuments} from './schema.js'
import type {ManifestObject, OperationContext, PlanEntry, Queryable} from './types.js'

export interface SourceOptions {
  /** Files, directories and `-` (stdin). */
  files: string[]
  recursive: boolean
  readStdin: () => Promise<Buffer>
  /** Limits (DESIGN.md §4), defaults MAX_MANIFEST_BYTES and MAX_ALIAS_COUNT. */
  maxBytes?: number
  maxAliases?: number
  /** Parsed large files kept between runs (see parse-cache.ts); omitted: parse every time. */
  cacheDir?: string
}

export interface ApplyOptions extends SourceOptions {
  dryRun: boolean
  prune: boolean
  applyset?: string
  /** Certificate issuance for `certificate: {issue: true}` (it may ask for the CA passphrase). */
  issuer: (days: number) => Promise<DeviceIssuer>
  /** Signing key and artifact store for Firmware objects (resolved on first use). */
  firmware?: OperationContext['firmware']
  /** Called with the plan before anything is written (the command prints it). */
  onPlan?: (plan: ApplyResult) => void
}

export type ResultWord = 'created' | 'configured' | 'unchanged' | 'deleted' | 'pruned' | 'not found'

export interface Change {
  kind: string
  name: string
  /** kubectl-style `device/dev-1`. */
  ref: string
  action: PlanEntry['action']
  result: ResultWord
  reasons: string[]
  source?: string
}

export interface ApplyResult {
  dry_run: boolean
  applyset: string | null
  changes: Change[]
  summary: Summary
  /** What happened after the commit (certificate files written). */
  notes: string[]
}

/** The database, or how to open it: opened only after every document was loaded and validated (bad input is exit 4, never 6). */
export type DatabaseSource = Database | (() => Promise<Database>)
const open = (source: DatabaseSource) => (typeof source === 'function' ? source() : Promise.resolve(source))

const APPLYSET_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/
// One apply at a time (transaction-level advisory lock): the plan is computed and executed against
// the same state, and two applies never both plan the same create. Any constant shared by all iotctl processes works.
const APPLY_LOCK_KEY = 0x10_7c_8a

/** Load, validate and check every document: nothing touches the database before this succeeded. */
export async function loadObjects(options: SourceOptions): Promise<ManifestObject[]> {
  return validateDocuments(await loadDocuments(options.files, options))
}

function operationContext(objects: ManifestObject[], deleting: Set<string>, issuer: OperationContext['issuer'], firmware?: OperationContext['firmware']): OperationContext {
  let user = 'unknown'
  try {
    user = userInfo().username
  } catch { /* no passwd entry (containers) */ }
  return {objects, deleting, memo: new Map(), issuer, firmware, actor: `manifest:${user}`, now: Date.now()}
}

/** Live state of the named objects of every kind, kinds in order (a later kind may read what an earlier stored in memo). */
async function loadLive(q: Queryable, names: Map<string, Set<string>>, ctx: OperationContext): Promise<LiveState> {
  const live: LiveState = new Map()
  for (const kind of KINDS) live.set(kind.kind, await kind.loadLive(q, [...(names.get(kind.kind) ?? [])], ctx) as Map<string, unknown>)
  return live
}

function namesOf(objects: Array<{kind: string; name: string}>): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>()
  for (const o of objects) names.set(o.kind, (names.get(o.kind) ?? new Set()).add(o.name))
  return names
}

/** World for reference checks: the files, plus live objects that are not gone and not being deleted. */
async function checkAgainstLive(q: Queryable, objects: ManifestObject[], deleting: Set<string>, ctx: OperationContext): Promise<void> {
  const inFiles = new Set(objects.map((o) => keyOf(o.kind, o.name)))
  const refs = objects.flatMap((o) => kindByName(o.kind)!.references?.(o) ?? []).filter((r) => !inFiles.has(keyOf(r.kind, r.name)))
  const live = await loadLive(q, namesOf(refs), {...ctx, objects: [], memo: new Map()})
  checkObjects(objects, {has: (kind, name) => {
    if (deleting.has(keyOf(kind, name))) return false
    if (inFiles.has(keyOf(kind, name))) return true
    const current = live.get(kind)?.get(name)
    return current !== undefined && !kindByName(kind)?.gone?.(current)
  }})
}

function view(entries: PlanEntry[], dryRun: boolean, applyset: string | undefined, notes: string[], mode: 'apply' | 'delete'): ApplyResult {
  const word = (e: PlanEntry): ResultWord => {
    if (e.action === 'create') return 'created'
    if (e.action === 'update') return 'configured'
    if (e.action === 'delete') return mode === 'apply' ? 'pruned' : 'deleted'
    return mode === 'delete' ? 'not found' : 'unchanged'
  }
  return {dry_run: dryRun, applyset: applyset ?? null, notes, summary: summarize(entries),
    changes: entries.map((e) => ({kind: e.kind, name: e.name, ref: `${e.resource}/${e.name}`, action: e.action, result: word(e), reasons: e.reasons,
      ...(e.object ? {source: formatPosition(e.object.source.at([]))} : {})}))}
}

/** Creates and updates in kind order, then deletes in reverse kind order; kinds with nothing to do are not called. */
async function execute(client: PoolClient, entries: PlanEntry[], ctx: OperationContext): Promise<void> {
  for (const kind of KINDS) {
    const mine = entries.filter((e) => e.kind === kind.kind && (e.action === 'create' || e.action === 'update'))
    if (mine.length > 0) await kind.apply(client, mine, ctx)
  }
  for (const kind of [...KINDS].reverse()) {
    const mine = entries.filter((e) => e.kind === kind.kind && e.action === 'delete')
    if (mine.length > 0) await kind.delete(client, mine, ctx)
  }
}

async function afterCommit(entries: PlanEntry[], ctx: OperationContext): Promise<string[]> {
  faultPoint('apply.after_commit')
  const notes: string[] = []
  for (const kind of KINDS) if (kind.afterCommit) notes.push(...(await kind.afterCommit(entries.filter((e) => e.kind === kind.kind), ctx)))
  return notes
}

async function applysetMembers(q: Queryable, applyset: string): Promise<Array<{kind: string; name: string}>> {
  const {rows} = await q.query<{kind: string; name: string}>('SELECT kind, name FROM applyset_members WHERE applyset = $1 ORDER BY kind, name', [applyset])
  return rows.filter((r) => kindByName(r.kind)) // kinds this build does not know are left alone
}

async function recordApplyset(client: PoolClient, applyset: string, objects: ManifestObject[], prune: boolean): Promise<void> {
  const kinds = objects.map((o) => o.kind)
  const names = objects.map((o) => o.name)
  if (prune) {
    await client.query(`DELETE FROM applyset_members m WHERE m.applyset = $1 AND NOT EXISTS (
      SELECT 1 FROM unnest($2::text[], $3::text[]) AS f(kind, name) WHERE f.kind = m.kind AND f.name = m.name)`, [applyset, kinds, names])
  }
  await client.query(`INSERT INTO applyset_members (applyset, kind, name) SELECT $1, kind, name FROM unnest($2::text[], $3::text[]) AS f(kind, name)
    ON CONFLICT DO NOTHING`, [applyset, kinds, names])
}

function assertApplyset(options: ApplyOptions): void {
  if (options.prune && !options.applyset) {
    throw usageError('E_PRUNE_NEEDS_APPLYSET', '--prune needs --applyset NAME: only objects an earlier apply of that applyset created are pruned', {hint: 'iotctl apply -f manifests/ --prune --applyset fleet'})
  }
  if (options.applyset !== undefined && !APPLYSET_PATTERN.test(options.applyset)) {
    throw usageError('E_APPLYSET', `invalid applyset name ${JSON.stringify(options.applyset)}: 1-64 characters of a-z, 0-9, ".", "_" and "-"`, {hint: 'e.g. --applyset fleet-berlin'})
  }
}

/**
 * `apply`: load and validate everything, then in ONE transaction read live state, plan (pure),
 * hand the plan to onPlan, write it; after the commit, the kinds' afterCommit work (certificate
 * files). Shadow deltas are announced with NOTIFY inside the transaction, which PostgreSQL delivers
 * only on commit, so devices hear of nothing that was rolled back. A dry run writes nothing.
 */
export async function applyManifests(source: DatabaseSource, options: ApplyOptions): Promise<ApplyResult> {
  assertApplyset(options)
  const objects = await loadObjects(options)
  const db = await open(source)
  const ctx = operationContext(objects, new Set(), options.issuer, options.firmware)
  const {entries, result} = await withTransaction(db.pool, db.url, async (client) => {
    if (!options.dryRun) await client.query('SELECT pg_advisory_xact_lock($1)', [APPLY_LOCK_KEY])
    const members = options.applyset ? await applysetMembers(client, options.applyset) : []
    const inFiles = new Set(objects.map((o) => keyOf(o.kind, o.name)))
    const prune = options.prune ? members.filter((m) => !inFiles.has(keyOf(m.kind, m.name))) : []
    for (const p of prune) ctx.deleting.add(keyOf(p.kind, p.name))
    await checkAgainstLive(client, objects, ctx.deleting, ctx)
    const live = await loadLive(client, namesOf([...objects, ...prune]), ctx)
    const entries = planApply(objects, live, prune, ctx)
    const preview = view(entries, options.dryRun, options.applyset, [], 'apply')
    options.onPlan?.(preview)
    if (options.dryRun) return {entries, result: preview}
    await execute(client, entries, ctx)
    if (options.applyset) await recordApplyset(client, options.applyset, objects, options.prune)
    return {entries, result: preview}
  })
  if (options.dryRun) return result
  return {...result, notes: await afterCommit(entries, ctx)}
}

/** `delete -f`: the files' objects that are live, deleted in one transaction (devices deprovisioned). */
export async function deleteManifests(source: DatabaseSource, options: SourceOptions & {dryRun: boolean}): Promise<ApplyResult> {
  const objects = await loadObjects(options)
  checkObjects(objects, {has: () => true}) // duplicates and values; references do not matter for a delete
  const db = await open(source)
  const ctx = operationContext(objects, new Set(objects.map((o) => keyOf(o.kind, o.name))), () => Promise.reject(new Error('no certificates are issued by delete')))
  return withTransaction(db.pool, db.url, async (client) => {
    if (!options.dryRun) await client.query('SELECT pg_advisory_xact_lock($1)', [APPLY_LOCK_KEY])
    const live = await loadLive(client, namesOf(objects), {...ctx, objects: []})
    const entries = planDelete(objects, live)
    if (!options.dryRun) await execute(client, entries, ctx)
    return view(entries, options.dryRun, undefined, [], 'delete')
  })
}

/** Plan without writing, for `diff`: the entries with their live state (read on a pooled client, no transaction held). */
export async function planForDiff(source: DatabaseSource, options: SourceOptions & {prune: boolean; applyset?: string}): Promise<PlanEntry[]> {
  assertApplyset({...options, dryRun: true, issuer: () => Promise.reject(new Error('diff issues nothing'))})
  const objects = await loadObjects(options)
  const db = await open(source)
  const ctx = operationContext(objects, new Set(), () => Promise.reject(new Error('diff issues nothing')))
  const client = await connectClient(db.pool, db.url)
  try {
    const members = options.applyset ? await applysetMembers(client, options.applyset) : []
    const inFiles = new Set(objects.map((o) => keyOf(o.kind, o.name)))
    const prune = options.prune ? members.filter((m) => !inFiles.has(keyOf(m.kind, m.name))) : []
    for (const p of prune) ctx.deleting.add(keyOf(p.kind, p.name))
    await checkAgainstLive(client, objects, ctx.deleting, ctx)
    return planApply(objects, await loadLive(client, namesOf([...objects, ...prune]), ctx), prune, ctx)
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(db.url, error) : error
  } finally {
    client.release()
  }
}
