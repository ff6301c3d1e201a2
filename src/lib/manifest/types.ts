import type {ZodType} from 'zod'
import type {PoolClient} from '../db/pool.js'
import type {DeviceIssuer} from '../pki/index.js'
import type {ArtifactStore} from '../firmware/index.js'

export interface FirmwareTools {
  signing: {key: import('node:crypto').KeyObject; keyId: string}
  store: ArtifactStore
}

export const API_VERSION = 'iotctl/v1'
/** Names of every kind's objects: the device id rule, so a name is always safe in topics and paths. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/

/** The zod namespace, handed to each kind: zod loads lazily (DESIGN.md §2), never at --help. */
export type Zod = typeof import('zod').z

export type FieldPath = Array<string | number>

export interface Position {
  file: string
  line: number
  column: number
}

/** Where a document came from, and the position of any field path inside it. */
export interface Source {
  file: string
  /** Relative paths inside a manifest (certificate out dirs, firmware files) resolve against this. */
  dir: string
  /** Position of the path, or of the nearest ancestor that exists (a missing field points at its parent). */
  at(path: FieldPath, onKey?: boolean): Position
}

/** One problem in the input: where, which field, what was expected. */
export interface ManifestIssue {
  position: Position
  /** Field path such as `spec.owner`, or '' for the whole document. */
  path: string
  message: string
}

/** The manifest form of an object: what `get -o yaml` prints, what `diff` compares. */
export interface ManifestDocument {
  apiVersion: string
  kind: string
  metadata: {name: string; labels?: Record<string, string>}
  spec: Record<string, unknown>
}

/** A validated document from the files. */
export interface ManifestObject<Spec = unknown> {
  kind: string
  name: string
  labels: Record<string, string>
  spec: Spec
  source: Source
}

export type Action = 'create' | 'update' | 'unchanged' | 'delete'

/** One line of a plan. `live` is the kind's live state (absent for a create). */
export interface PlanEntry<Spec = unknown, Live = unknown> {
  kind: string
  resource: string
  name: string
  action: Action
  /** Why an update or delete happens beyond the spec comparison (e.g. certificate files missing, prune). */
  reasons: string[]
  /** The spec differs from live (a create, or an update of the object itself, not only pending work). */
  specChanged: boolean
  object?: ManifestObject<Spec>
  live?: Live
}

export type Queryable = Pick<PoolClient, 'query'>

/** Shared by every kind during one operation (loadLive → plan → apply → afterCommit). */
export interface OperationContext {
  /** Every validated object of the files, all kinds (a kind may need others': groups select planned devices). */
  objects: ManifestObject[]
  /** `Kind/name` of objects this operation deletes (prune or `delete -f`). */
  deleting: Set<string>
  /** Scratch space of the kinds, keyed by the kind's own names (e.g. issued certificates for afterCommit). */
  memo: Map<string, unknown>
  /** Certificate issuance for a lifetime in days, resolved only when some object needs it (it may ask for the CA passphrase). */
  issuer: (days: number) => Promise<DeviceIssuer>
  /** The firmware signing key and artifact store, resolved only when a Firmware object is created (it may ask for the passphrase). */
  firmware?: () => Promise<FirmwareTools>
  /** Shadow history actor for desired state written by this operation. */
  actor: string
  now: number
}

/** Facts about other objects a kind's cross-object checks may ask for. */
export interface CheckWorld {
  /** True if the object is in the files or live (and not being deleted). */
  has(kind: string, name: string): boolean
}

/**
 * A kind of manifest object. Adding a kind is one module exporting one of these plus one line in
 * kinds/index.ts. `Live` is whatever the kind loads from the database for an object.
 */
export interface KindHandler<Spec = any, Live = any> {
  /** `Device`, as written in `kind:`. */
  readonly kind: string
  /** `device`: kubectl-style output (`device/dev-1 created`) and the `get` argument. */
  readonly resource: string
  /** More names `get` accepts (plural, short). */
  readonly aliases: readonly string[]
  /** Apply order, lower first (objects that others reference come first); deletes run in reverse. */
  readonly order: number
  /** The spec's schema from the zod namespace (validation and the published JSON Schema). */
  spec(z: Zod): ZodType<Spec>
  /** Checks schemas cannot express (values, references); pure. */
  check?(object: ManifestObject<Spec>, world: CheckWorld): Array<Omit<ManifestIssue, 'position'> & {at: FieldPath}>
  /** References to other objects, checked to exist in the files or live (a missing one is exit 4). */
  references?(object: ManifestObject<Spec>): Array<{kind: string; name: string; at: FieldPath}>
  /** Live state of the named objects; names that do not exist are absent from the map. */
  loadLive(q: Queryable, names: string[], ctx: OperationContext): Promise<Map<string, Live>>
  /** Names of every live object, sorted (for `get KIND`). */
  listNames(q: Queryable): Promise<string[]>
  /** The live object as a manifest (canonical: `get` prints it, re-applying it changes nothing). */
  exportLive(live: Live): ManifestDocument
  /** The file's object in the same canonical form; `live` fills fields the file leaves unmanaged. */
  canonical(object: ManifestObject<Spec>, live: Live | undefined): ManifestDocument
  /** Work the spec comparison cannot see, one reason each (empty: nothing to do). */
  pending?(object: ManifestObject<Spec>, live: Live | undefined, ctx: OperationContext): string[]
  /** A live object that counts as absent (a deprovisioned device): `get` hides it, `delete` skips it. */
  gone?(live: Live): boolean
  /** Why this live object cannot be applied or deleted (e.g. a deprovisioned device), or undefined. */
  blocked?(live: Live, action: 'apply' | 'delete'): string | undefined
  /** Creates and updates of this kind, inside the one transaction. */
  apply(client: PoolClient, entries: Array<PlanEntry<Spec, Live>>, ctx: OperationContext): Promise<void>
  /** Deletes of this kind, inside the one transaction (devices are deprovisioned, never erased). */
  delete(client: PoolClient, entries: Array<PlanEntry<Spec, Live>>, ctx: OperationContext): Promise<void>
  /** After the commit: files, notices. Must converge when it never ran (a crash): re-apply redoes it. */
  afterCommit?(entries: Array<PlanEntry<Spec, Live>>, ctx: OperationContext): Promise<string[]>
}
