import {invalidInput} from './errors.js'

export const LABEL_KEY_PATTERN = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
export const LABEL_VALUE_PATTERN = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/

/** Parse repeated `k=v` flags into an object; `what` names the flag in errors ("--label"). */
export function parseKeyValues(pairs: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq <= 0) {
      throw invalidInput('E_KEY_VALUE', `${what} ${JSON.stringify(pair)} is not of the form key=value`, {
        hint: `write ${what} site=berlin (repeat the flag for more pairs)`,
      })
    }
    out[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return out
}

/**
 * Labels follow Kubernetes' syntax (optional DNS prefix, name up to 63 characters; values up to
 * 63 characters) so that the selector grammar can always address them.
 */
export function assertLabels(labels: Record<string, unknown>, where = 'label'): Record<string, string> {
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY_PATTERN.test(key)) {
      throw invalidInput('E_LABEL_KEY', `invalid ${where} key ${JSON.stringify(key)}: use letters, digits, "-", "_", "." (at most 63, optionally prefixed by "domain/")`, {hint: 'e.g. site, tier, example.com/rack'})
    }
    if (typeof value !== 'string' || !LABEL_VALUE_PATTERN.test(value)) {
      throw invalidInput('E_LABEL_VALUE', `invalid ${where} value for ${key}: ${JSON.stringify(value)}: a string of at most 63 letters, digits, "-", "_", "." starting and ending with a letter or digit`, {hint: 'e.g. berlin, prod, rack-12 (no spaces)'})
    }
  }
  return labels as Record<string, string>
}
