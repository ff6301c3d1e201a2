import {planForDiff, type DatabaseSource, type SourceOptions} from './apply.js'
import {kindByName} from './kinds/index.js'
import {summarize, type Summary} from './plan.js'
import type {ManifestDocument, PlanEntry} from './types.js'

export interface DiffResult {
  /** True when an apply would change something (exit 1). */
  changed: boolean
  summary: Summary
  /** Unified diff, live → files, one block per changed object. */
  diff: string
}

async function toYaml(document: ManifestDocument | undefined): Promise<string> {
  if (!document) return ''
  const {stringify} = await import('yaml')
  return stringify(document, {sortMapEntries: true})
}

/** One object's block: the spec difference, then pending work the spec cannot show, as comments. */
async function block(entry: PlanEntry): Promise<string> {
  const kind = kindByName(entry.kind)!
  const before = entry.live === undefined || kind.gone?.(entry.live) ? undefined : kind.exportLive(entry.live)
  const after = entry.action === 'delete' ? undefined : kind.canonical(entry.object!, entry.live)
  const ref = `${entry.resource}/${entry.name}`
  let text = ''
  if (entry.specChanged) {
    const {createTwoFilesPatch} = await import('diff')
    text = createTwoFilesPatch(`live/${ref}`, `files/${ref}`, await toYaml(before), await toYaml(after), undefined, undefined, {context: 3})
    text = text.replace(/^=+\n/, '') // the Index separator line of the diff package adds nothing here
  }
  for (const reason of entry.reasons) text += `# ${ref}: ${reason}\n`
  return text
}

/** `diff -f`: what an apply of the same files would change, as a unified diff of live state against the files. */
export async function diffManifests(db: DatabaseSource, options: SourceOptions & {prune: boolean; applyset?: string}): Promise<DiffResult> {
  const entries = await planForDiff(db, options)
  const changed = entries.filter((e) => e.action !== 'unchanged')
  const blocks: string[] = []
  for (const entry of changed) blocks.push(await block(entry))
  return {changed: changed.length > 0, summary: summarize(entries), diff: blocks.join('')}
}
