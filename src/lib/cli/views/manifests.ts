import type {ApplyResult, Change} from '../../manifest/index.js'
import type {View} from '../output.js'

/** kubectl-style result lines: `device/dev-1 created`, `… (dry run)`. */
export function changeLines(result: ApplyResult): string {
  const suffix = result.dry_run ? ' (dry run)' : ''
  return result.changes.map((c) => `${c.ref} ${c.result}${suffix}\n`).join('')
}

/** The plan for people, on stderr, before anything is written: counts, then what changes and why. */
export function planText(result: ApplyResult, verb = 'apply'): string {
  const s = result.summary
  const lines = [`Plan (${verb}): ${s.created} to create, ${s.configured} to configure, ${s.deleted} to delete, ${s.unchanged} unchanged`]
  for (const c of result.changes) {
    if (c.action === 'unchanged') continue
    const mark = c.action === 'create' ? '+' : c.action === 'delete' ? '-' : '~'
    lines.push(`  ${mark} ${c.ref}${c.reasons.length > 0 ? `  (${c.reasons.join('; ')})` : ''}`)
  }
  return lines.slice(0, 201).join('\n') + (lines.length > 201 ? `\n  … and ${lines.length - 201} more` : '') + '\n'
}

export const changeView: View<Change> = {
  rows: (r) => (r as ApplyResult).changes,
  name: (c) => c.ref,
  columns: [{header: 'OBJECT', get: (c) => c.ref}, {header: 'RESULT', get: (c) => c.result}, {header: 'REASONS', get: (c) => c.reasons.join('; ')}],
}
