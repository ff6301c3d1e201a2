import {notFound, usageError} from '../core/errors.js'
import {connectClient, databaseUnavailable, isConnectionError, type Database} from '../db/pool.js'
import {KINDS, resolveKind} from './kinds/index.js'
import type {ManifestDocument} from './types.js'

/**
 * `get KIND [NAME]`: live objects as manifests, in the canonical form `diff` compares, so that
 * applying the output changes nothing.
 */
export async function exportObjects(db: Database, kindName: string, name?: string): Promise<ManifestDocument[]> {
  const kind = resolveKind(kindName)
  if (!kind) {
    throw usageError('E_UNKNOWN_KIND', `unknown kind ${JSON.stringify(kindName)}`, {hint: `one of: ${KINDS.map((k) => k.resource).join(', ')}`})
  }
  const client = await connectClient(db.pool, db.url)
  try {
    const names = name === undefined ? await kind.listNames(client) : [name]
    const ctx = {objects: [], deleting: new Set<string>(), memo: new Map(), issuer: () => Promise.reject(new Error('get issues nothing')), actor: 'get', now: Date.now()}
    const live = await kind.loadLive(client, names, ctx)
    const docs = names.flatMap((n) => {
      const current = live.get(n)
      return current === undefined || kind.gone?.(current) ? [] : [kind.exportLive(current)]
    })
    if (name !== undefined && docs.length === 0) {
      throw notFound('E_OBJECT_NOT_FOUND', `${kind.resource}/${name} not found`, {hint: `list them with \`iotctl get ${kind.resource}\``})
    }
    return docs
  } catch (error) {
    throw isConnectionError(error) ? databaseUnavailable(db.url, error) : error
  } finally {
    client.release()
  }
}

/** Several manifests as one multi-document YAML stream (what `apply -f -` reads back). */
export async function toYamlStream(documents: ManifestDocument[]): Promise<string> {
  const {stringify} = await import('yaml')
  return documents.map((d) => stringify(d)).join('---\n')
}
