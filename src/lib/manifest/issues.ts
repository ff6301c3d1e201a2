import {invalidInput, type IotctlError} from '../core/errors.js'
import type {FieldPath, ManifestIssue, Position} from './types.js'

/** Issues printed in one error; the JSON envelope's data carries all of them. */
const MAX_LISTED = 50

export const formatPosition = (p: Position) => `${p.file}:${p.line}:${p.column}`

/** `spec.labels.site`, `spec.items[2]`. */
export function formatPath(path: FieldPath): string {
  return path.reduce<string>((text, segment) => typeof segment === 'number' ? `${text}[${segment}]` : text ? `${text}.${segment}` : segment, '')
}

export function formatIssue(issue: ManifestIssue): string {
  return `${formatPosition(issue.position)}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`
}

/** Every problem found, in file order, as one exit-4 error: nothing was changed. */
export function manifestErrors(issues: ManifestIssue[]): IotctlError {
  const sorted = [...issues].sort((a, b) => a.position.file.localeCompare(b.position.file) || a.position.line - b.position.line || a.position.column - b.position.column)
  const listed = sorted.slice(0, MAX_LISTED).map((i) => `  ${formatIssue(i)}`).join('\n')
  const more = sorted.length > MAX_LISTED ? `\n  … and ${sorted.length - MAX_LISTED} more` : ''
  return invalidInput('E_MANIFEST_INVALID', `${sorted.length} problem${sorted.length === 1 ? '' : 's'} in the manifests; nothing was changed:\n${listed}${more}`, {
    hint: 'fix the files at the positions shown and run it again (`iotctl schema` prints the JSON Schema for editors)',
    data: {issues: sorted.map((i) => ({file: i.position.file, line: i.position.line, column: i.position.column, path: i.path, message: i.message}))},
  })
}
