import {userInfo} from 'node:os'
import {invalidInput, usageError} from '../core/errors.js'
import {assertDeviceId} from '../core/device-id.js'
import type {Database} from '../db/pool.js'
import {listen} from '../db/listen.js'
import {patchFromAssignments, type JsonObject, type ShadowDocument} from './document.js'
import {getShadow, rejectionError, setDesiredForSelection, SHADOW_CHANGED_CHANNEL, shadowVersionsAfter, updateShadow, type BulkResult} from './store.js'

/** Who a CLI change is recorded as in shadow_history. */
export function cliActor(kind: 'cli' | 'selector' = 'cli'): string {
  if (userName === undefined) {
    try {
      userName = userInfo().username
    } catch {
      userName = 'unknown' // no passwd entry (containers)
    }
  }
  return `${kind}:${userName}`
}

let userName: string | undefined

/** The desired patch from `key=value` arguments or a JSON file's text (exactly one of them). */
export function desiredPatch(input: {assignments: string[]; fileText?: string; fileName?: string}): JsonObject {
  if (input.fileText !== undefined && input.assignments.length > 0) {
    throw usageError('E_USAGE', 'give key=value pairs or --file, not both', {hint: 'iotctl shadow set dev-1 mode=cooling   or   iotctl shadow set dev-1 --file desired.json'})
  }
  if (input.fileText !== undefined) {
    let value: unknown
    try {
      value = JSON.parse(input.fileText)
    } catch (error) {
      throw invalidInput('E_SHADOW_FILE', `${input.fileName ?? 'the file'} is not JSON: ${(error as Error).message}`, {hint: 'the file holds the desired object, e.g. {"mode": "cooling"}'})
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw invalidInput('E_SHADOW_FILE', `${input.fileName ?? 'the file'} must hold a JSON object of desired values`, {hint: 'e.g. {"target_temperature": 72}'})
    }
    const v = value as JsonObject
    // Accept the AWS request shape too: {"state": {"desired": {...}}}.
    const state = v.state as JsonObject | undefined
    return Object.keys(v).length === 1 && state && typeof state === 'object' && 'desired' in state ? state.desired as JsonObject : v
  }
  if (input.assignments.length === 0) throw usageError('E_USAGE', 'nothing to set', {hint: 'pass key=value pairs (a.b=1 nests, key=null deletes) or --file desired.json'})
  const patch = patchFromAssignments(input.assignments)
  if ('ok' in patch) throw invalidInput('E_SHADOW_INVALID', `${patch.path ? `${patch.path}: ` : ''}${patch.message}`, {hint: 'e.g. target_temperature=72 mode=cooling a.b=1 key=null'})
  return patch as JsonObject
}

export interface SetResult {
  device_id: string
  version: number
  desired: JsonObject
  delta: JsonObject | null
}

/** `shadow set ID …`: one device, optionally at an expected version (exit 5 on a conflict). */
export async function setDesired(db: Database, id: string, desired: JsonObject, expectedVersion?: number): Promise<SetResult> {
  assertDeviceId(id)
  const outcome = await updateShadow(db, id, {state: {desired}, ...(expectedVersion === undefined ? {} : {version: expectedVersion})}, {actor: cliActor()})
  if (!outcome.ok) throw rejectionError(outcome)
  const doc = outcome.document
  return {device_id: id, version: doc.version, desired: doc.state.desired, delta: doc.state.delta ?? null}
}

/** `shadow set --selector S …`: every matching device in one transaction. */
export function setDesiredBySelector(db: Database, selection: {selector?: string; type?: string}, desired: JsonObject): Promise<BulkResult> {
  return setDesiredForSelection(db, selection, desired, {actor: cliActor('selector')})
}

/**
 * `shadow watch ID`: the current document, then every committed version in order, until `signal` aborts or
 * `maxEvents` documents were emitted.
 */
export async function watchShadow(db: Database, id: string, onDocument: (doc: ShadowDocument) => void, options: {signal: AbortSignal; maxEvents?: number}): Promise<void> {
  let last = await getShadow(db, id)
  let emitted = 0
  const emit = (doc: ShadowDocument) => {
    onDocument(doc)
    emitted++
  }
  emit(last)
  if (options.maxEvents !== undefined && emitted >= options.maxEvents) return
  await new Promise<void>((resolve, reject) => {
    let queue = Promise.resolve()
    const check = () => {
      queue = queue.then(async () => {
        // Every version, from the history: several commits between two reads must not be folded into one.
        for (const doc of await shadowVersionsAfter(db, id, last.version)) {
          last = doc
          emit(doc)
          if (options.maxEvents !== undefined && emitted >= options.maxEvents) return finish()
        }
      }).catch(reject)
    }
    let finish = () => resolve()
    listen(db.url, SHADOW_CHANGED_CHANNEL, (payload) => {
      if (payload.split(',').includes(id)) check()
    }, {onReconnect: check}).then((listener) => {
      finish = () => void listener.close().then(() => resolve())
      options.signal.addEventListener('abort', () => finish(), {once: true})
      check() // a change committed between the first read and LISTEN
    }, reject)
  })
}
