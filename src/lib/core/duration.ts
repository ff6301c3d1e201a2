import ms from 'ms'
import {invalidInput} from '../core/errors.js'

/** "30d", "24h", "90m", "45s" → milliseconds (via `ms`); anything else is exit 4. */
export function parseDuration(text: string, flag: string): number {
  const value = /^\d+(\.\d+)?\s*(ms|s|m|h|d|w)$/i.test(text.trim()) ? ms(text.trim() as ms.StringValue) : undefined
  if (value === undefined || !Number.isFinite(value) || value < 0) {
    throw invalidInput('E_DURATION', `${flag} ${JSON.stringify(text)} is not a duration`, {hint: 'e.g. 30d, 24h, 90m, 45s'})
  }
  return value
}
