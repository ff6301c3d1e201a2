import type {ZodType} from 'zod'
import {LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN} from '../core/key-value.js'
import {formatPath, manifestErrors} from './issues.js'
import {KINDS, kindNames} from './kinds/index.js'
import type {RawDocument} from './load.js'
import {API_VERSION, NAME_PATTERN, type ManifestIssue, type ManifestObject, type Zod} from './types.js'

export const NAME_RULE = '1-64 characters of a-z, 0-9, "_" and "-", starting with a letter or digit'

interface Schemas {
  z: Zod
  byKind: Map<string, ZodType>
  all: ZodType
}

let schemas: Promise<Schemas> | undefined

/** One schema per kind, built once from the kinds' spec schemas: the JSON Schema and the validator share it. */
function loadSchemas(): Promise<Schemas> {
  schemas ??= (async () => {
    const {z} = await import('zod')
    const metadata = z.strictObject({
      name: z.string().regex(NAME_PATTERN, {error: `expected a name: ${NAME_RULE}`}).describe('the object\'s name (for a Device: its device id)'),
      labels: z.record(
        z.string().regex(LABEL_KEY_PATTERN, {error: 'expected a label key: letters, digits, "-", "_", "." (at most 63), optionally prefixed by "domain/"'}),
        z.string().regex(LABEL_VALUE_PATTERN, {error: 'expected a label value: at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit'}),
      ).optional(),
    })
    const byKind = new Map<string, ZodType>()
    for (const kind of KINDS) {
      byKind.set(kind.kind, z.strictObject({
        apiVersion: z.literal(API_VERSION),
        kind: z.literal(kind.kind),
        metadata,
        spec: kind.spec(z),
      }).describe(`iotctl ${kind.kind}`))
    }
    const members = [...byKind.values()] as [ZodType, ...ZodType[]]
    return {z, byKind, all: z.union(members)}
  })()
  return schemas
}

/** JSON Schema (draft-07) of every kind, for yaml-language-server: `# yaml-language-server: $schema=iotctl.schema.json`. */
export async function manifestJsonSchema(): Promise<Record<string, unknown>> {
  const {z, all} = await loadSchemas()
  const schema = z.toJSONSchema(all, {target: 'draft-07', io: 'input'}) as Record<string, unknown>
  return {...schema, $id: 'https://iotctl.dev/schemas/iotctl-v1.json', title: `iotctl manifests (${API_VERSION}: ${kindNames().join(', ')})`}
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Validate every document; all problems of all documents are reported together (exit 4). */
export async function validateDocuments(documents: RawDocument[]): Promise<ManifestObject[]> {
  const {byKind} = await loadSchemas()
  const issues: ManifestIssue[] = []
  const objects: ManifestObject[] = []
  for (const doc of documents) {
    const issue = (path: Array<string | number>, message: string, onKey = false) =>
      issues.push({position: doc.source.at(path, onKey), path: formatPath(path), message})
    const value = doc.value
    if (!isObject(value)) {
      issue([], `expected a mapping with apiVersion, kind, metadata and spec, found ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`)
      continue
    }
    if (value.apiVersion !== API_VERSION) {
      issue(['apiVersion'], `unknown apiVersion ${JSON.stringify(value.apiVersion ?? null)}; expected "${API_VERSION}"`)
      continue
    }
    const schema = typeof value.kind === 'string' ? byKind.get(value.kind) : undefined
    if (!schema) {
      issue(['kind'], `unknown kind ${JSON.stringify(value.kind ?? null)}; expected one of ${kindNames().join(', ')}`)
      continue
    }
    const result = schema.safeParse(value)
    if (!result.success) {
      for (const zi of result.error.issues) {
        if (zi.code === 'unrecognized_keys') {
          for (const key of zi.keys) issue([...zi.path as Array<string | number>, key], `unknown field ${JSON.stringify(key)}; expected one of ${knownKeys(schema, zi.path as Array<string | number>)}`, true)
        } else {
          issue(zi.path as Array<string | number>, zi.message)
        }
      }
      continue
    }
    const data = result.data as {kind: string; metadata: {name: string; labels?: Record<string, string>}; spec: unknown}
    objects.push({kind: data.kind, name: data.metadata.name, labels: data.metadata.labels ?? {}, spec: data.spec, source: doc.source})
  }
  if (issues.length > 0) throw manifestErrors(issues)
  return objects
}

/** The keys an object schema allows at a path, for "unknown field" messages. */
function knownKeys(schema: ZodType, path: Array<string | number>): string {
  let node = schema as unknown as {shape?: Record<string, unknown>; unwrap?: () => unknown}
  for (const segment of path) {
    while (!node.shape && node.unwrap) node = node.unwrap() as typeof node
    const next = node.shape?.[segment as string]
    if (!next) return '(see `iotctl schema`)'
    node = next as typeof node
  }
  while (!node.shape && node.unwrap) node = node.unwrap() as typeof node
  return node.shape ? Object.keys(node.shape).join(', ') : '(see `iotctl schema`)'
}
