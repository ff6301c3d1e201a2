/**
 * Device shadow documents, after the AWS IoT Device Shadow model (desired / reported / delta,
 * per-leaf metadata timestamps, versions). Pure: no I/O, times passed in.
 */

export type Json = null | boolean | number | string | Json[] | {[key: string]: Json}
export type JsonObject = {[key: string]: Json}

/** Per-leaf update times, in the shape of the state they describe. */
export type Metadata = {[key: string]: Metadata | {timestamp: number}}

export interface ShadowDocument {
  state: {desired: JsonObject; reported: JsonObject; delta?: JsonObject}
  metadata: {desired: Metadata; reported: Metadata}
  version: number
  /** Epoch seconds of the last accepted update. */
  timestamp: number
}

export type Section = 'desired' | 'reported'

export interface ShadowUpdate {
  /** A section given as null is cleared whole; keys set to null are deleted. */
  state: {desired?: JsonObject | null; reported?: JsonObject | null}
  /** Apply only if the document is at this version (optimistic locking). */
  version?: number
  clientToken?: string
}

export interface ShadowLimits {
  /** Bytes of JSON of desired + reported after the update (AWS: 8 KiB). */
  maxBytes: number
  /** Nesting depth of an object inside desired or reported (AWS: 6). */
  maxDepth: number
}

export const DEFAULT_LIMITS: ShadowLimits = {maxBytes: 8 * 1024, maxDepth: 6}

/** Reasons an update is refused, with HTTP-like codes as AWS uses on `update/rejected`. */
export type RejectCode = 400 | 409 | 413
export interface Rejection {
  ok: false
  code: RejectCode
  message: string
  /** Field path that was wrong, e.g. `state.desired.a.b`. */
  path?: string
  /** On a version conflict: the version the document is at. */
  currentVersion?: number
}
export interface Accepted {
  ok: true
  document: ShadowDocument
  /** The update as applied, with its metadata (what `update/accepted` carries). */
  applied: {state: {desired?: JsonObject | null; reported?: JsonObject | null}; metadata: {desired?: Metadata; reported?: Metadata}}
}

/**
 * Keys: letters, digits, `_` and `-` (a `.` would be ambiguous with `a.b=1`, `$` is reserved), and
 * never `__proto__`: merged or built into a patch it would write into Object.prototype.
 */
export const KEY_PATTERN = /^(?!__proto__$)[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/

export function emptyDocument(): ShadowDocument {
  return {state: {desired: {}, reported: {}}, metadata: {desired: {}, reported: {}}, version: 0, timestamp: 0}
}

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value)

/** Deep equality of JSON values (arrays compared whole, in order). */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]))
  if (isObject(a)) {
    if (!isObject(b)) return false
    const keys = Object.keys(a)
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && jsonEqual(a[k], b[k]))
  }
  return false
}

/**
 * Every leaf of `desired` that differs from `reported`: nested objects leaf by leaf, arrays whole,
 * a type change (object vs value) is a difference. Undefined when there is none.
 */
export function computeDelta(desired: JsonObject, reported: JsonObject): JsonObject | undefined {
  const delta: JsonObject = {}
  for (const [key, want] of Object.entries(desired)) {
    const have = reported[key]
    if (isObject(want) && isObject(have)) {
      const nested = computeDelta(want, have)
      if (nested) delta[key] = nested
    } else if (!jsonEqual(want, have)) {
      delta[key] = want
    }
  }
  return Object.keys(delta).length > 0 ? delta : undefined
}

/** The metadata of the delta's leaves: when each still-unmet desired value was set. */
export function deltaMetadata(delta: JsonObject, metadata: Metadata): Metadata {
  const out: Metadata = {}
  for (const [key, value] of Object.entries(delta)) {
    const meta = metadata[key]
    if (isObject(value) && meta && !('timestamp' in meta && typeof meta.timestamp === 'number')) out[key] = deltaMetadata(value, meta as Metadata)
    else if (meta) out[key] = meta
  }
  return out
}

function leafMetadata(value: Json, timestamp: number): Metadata | {timestamp: number} {
  if (!isObject(value)) return {timestamp}
  const out: Metadata = {}
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = leafMetadata(v, timestamp)
  return out
}

/** Recursive merge: objects merge key by key, null deletes, anything else (arrays too) replaces. */
function merge(target: JsonObject, patch: JsonObject, meta: Metadata, timestamp: number): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete target[key]
      delete meta[key]
    } else if (isObject(value) && isObject(target[key])) {
      const m = meta[key]
      const nestedMeta: Metadata = m && !('timestamp' in m && typeof m.timestamp === 'number') ? m as Metadata : {}
      merge(target[key] as JsonObject, value, nestedMeta, timestamp)
      meta[key] = nestedMeta
      if (Object.keys(target[key] as JsonObject).length === 0) {
        delete target[key]
        delete meta[key]
      }
    } else if (isObject(value)) {
      const pruned = withoutNulls(value)
      if (Object.keys(pruned).length === 0) {
        delete target[key]
        delete meta[key]
      } else {
        target[key] = pruned
        meta[key] = leafMetadata(pruned, timestamp)
      }
    } else {
      target[key] = value
      meta[key] = {timestamp}
    }
  }
}

function withoutNulls(value: JsonObject): JsonObject {
  const out: JsonObject = {}
  for (const [k, v] of Object.entries(value)) {
    if (v === null) continue
    if (isObject(v)) {
      const nested = withoutNulls(v)
      if (Object.keys(nested).length > 0) out[k] = nested
    } else out[k] = v
  }
  return out
}

/** Check names and depth of a patch; the first problem, with its path. Objects inside arrays count too. */
function checkShape(value: JsonObject, path: string, depth: number, limits: ShadowLimits): Rejection | undefined {
  if (depth > limits.maxDepth) return reject(400, `nested deeper than ${limits.maxDepth} levels`, path)
  for (const [key, v] of Object.entries(value)) {
    const at = `${path}.${key}`
    if (!KEY_PATTERN.test(key)) return reject(400, `invalid key ${JSON.stringify(key)}: use letters, digits, "_" and "-" (at most 64)`, at)
    const problem = checkValue(v, at, depth, limits)
    if (problem) return problem
  }
  return undefined
}

function checkValue(v: Json, at: string, depth: number, limits: ShadowLimits): Rejection | undefined {
  if (typeof v === 'number' && !Number.isFinite(v)) return reject(400, 'numbers must be finite', at)
  if (isObject(v)) return checkShape(v, at, depth + 1, limits)
  if (Array.isArray(v)) {
    for (const [i, item] of v.entries()) {
      const problem = checkValue(item, `${at}[${i}]`, depth, limits)
      if (problem) return problem
    }
  }
  return undefined
}

const reject = (code: RejectCode, message: string, path?: string, currentVersion?: number): Rejection =>
  ({ok: false, code, message, ...(path ? {path} : {}), ...(currentVersion === undefined ? {} : {currentVersion})})

/** Validate the shape of an update request as received (from JSON). */
export function parseUpdate(input: unknown): ShadowUpdate | Rejection {
  if (!isObject(input)) return reject(400, 'the update must be a JSON object {"state": {...}}')
  const {state, version, clientToken} = input
  if (!isObject(state)) return reject(400, 'missing "state" object', 'state')
  for (const key of Object.keys(state)) {
    if (key !== 'desired' && key !== 'reported') return reject(400, `unknown section ${JSON.stringify(key)}: expected "desired" or "reported"`, `state.${key}`)
    const section = state[key]
    if (section !== null && !isObject(section)) return reject(400, `"${key}" must be an object or null`, `state.${key}`)
  }
  if (!('desired' in state) && !('reported' in state)) return reject(400, 'the state names neither "desired" nor "reported"', 'state')
  if (version !== undefined && (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0)) {
    return reject(400, '"version" must be a non-negative integer', 'version')
  }
  if (clientToken !== undefined && (typeof clientToken !== 'string' || clientToken.length > 64)) {
    return reject(400, '"clientToken" must be a string of at most 64 characters', 'clientToken')
  }
  return {state: state as ShadowUpdate['state'], ...(version === undefined ? {} : {version}), ...(clientToken === undefined ? {} : {clientToken})}
}

/**
 * Apply an update: a new document with version + 1 and the delta recomputed, or a rejection
 * (version conflict 409, limits 413, shape 400). The input document is not modified.
 */
export function applyUpdate(current: ShadowDocument, update: ShadowUpdate, now: number, limits: ShadowLimits = DEFAULT_LIMITS): Accepted | Rejection {
  if (update.version !== undefined && update.version !== current.version) {
    return reject(409, `version conflict: the document is at version ${current.version}, the update expected ${update.version}`, 'version', current.version)
  }
  const timestamp = Math.floor(now / 1000)
  const next = structuredClone(current)
  const applied: Accepted['applied'] = {state: {}, metadata: {}}
  for (const section of ['desired', 'reported'] as const) {
    if (!(section in update.state)) continue
    const patch = update.state[section]
    if (patch === null) {
      next.state[section] = {}
      next.metadata[section] = {}
      applied.state[section] = null
      continue
    }
    if (!patch) continue
    const problem = checkShape(patch, `state.${section}`, 1, limits)
    if (problem) return problem
    merge(next.state[section], patch, next.metadata[section], timestamp)
    applied.state[section] = patch
    applied.metadata[section] = leafMetadata(withoutNulls(patch), timestamp) as Metadata
  }
  const bytes = Buffer.byteLength(JSON.stringify({desired: next.state.desired, reported: next.state.reported}))
  if (bytes > limits.maxBytes) return reject(413, `the document would be ${bytes} bytes, over the limit of ${limits.maxBytes}`, 'state')
  const delta = computeDelta(next.state.desired, next.state.reported)
  next.state = {desired: next.state.desired, reported: next.state.reported, ...(delta ? {delta} : {})}
  next.version = current.version + 1
  next.timestamp = timestamp
  return {ok: true, document: next, applied}
}

/** What `devices/{id}/shadow/delta` carries: the delta, its metadata and the document version. */
export function deltaMessage(document: ShadowDocument): {state: JsonObject; metadata: Metadata; version: number; timestamp: number} | undefined {
  const delta = document.state.delta
  if (!delta) return undefined
  return {state: delta, metadata: deltaMetadata(delta, document.metadata.desired), version: document.version, timestamp: document.timestamp}
}

/**
 * The oldest time (epoch seconds) at which a still-unmet desired leaf was set, or undefined when
 * the device has converged: what `shadow drift --older-than` compares.
 */
export function oldestPending(document: ShadowDocument): number | undefined {
  const delta = document.state.delta
  if (!delta) return undefined
  let oldest: number | undefined
  const walk = (meta: Metadata) => {
    for (const value of Object.values(meta)) {
      if ('timestamp' in value && typeof value.timestamp === 'number') oldest = oldest === undefined ? value.timestamp : Math.min(oldest, value.timestamp)
      else walk(value as Metadata)
    }
  }
  walk(deltaMetadata(delta, document.metadata.desired))
  return oldest
}

/**
 * `key=value` pairs as a desired patch: `a.b=1` nests, values are JSON when they parse
 * (`72` a number, `true`, `null` deletes, `[1,2]`), otherwise strings (`mode=cooling`).
 */
export function patchFromAssignments(assignments: string[]): JsonObject | Rejection {
  const patch: JsonObject = {}
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=')
    if (eq <= 0) return reject(400, `expected key=value, got ${JSON.stringify(assignment)}`, assignment)
    const path = assignment.slice(0, eq).split('.')
    const raw = assignment.slice(eq + 1)
    const bad = path.find((k) => !KEY_PATTERN.test(k))
    if (bad !== undefined) return reject(400, `invalid key ${JSON.stringify(bad)} in ${JSON.stringify(assignment.slice(0, eq))}: use letters, digits, "_" and "-"`, assignment.slice(0, eq))
    let value: Json
    try {
      value = JSON.parse(raw) as Json
    } catch {
      value = raw
    }
    let node = patch
    for (const key of path.slice(0, -1)) {
      if (!isObject(node[key])) node[key] = {}
      node = node[key] as JsonObject
    }
    node[path[path.length - 1]!] = value
  }
  return patch
}
