import {usageError} from '../core/errors.js'
import {canPrompt} from './terminal.js'

/**
 * Every prompt has a flag (DESIGN.md §4): with `--yes` no question is asked; without a person at
 * the terminal we refuse instead of hanging or reading EOF (@inquirer/prompts throws on EOF).
 */
export async function confirmOrRefuse(question: string, options: {yes: boolean; flag?: string}): Promise<void> {
  if (options.yes) return
  const flag = options.flag ?? '--yes'
  if (!canPrompt()) {
    throw usageError('E_CONFIRMATION_REQUIRED', `confirmation required ("${question}") and there is no terminal to ask; nothing was changed`, {
      hint: `pass ${flag} to confirm`,
    })
  }
  const {confirm} = await import('@inquirer/prompts')
  const ok = await confirm({message: question, default: false}, {output: process.stderr})
  if (!ok) throw usageError('E_CANCELLED', 'cancelled; nothing was changed', {hint: `run it again and answer yes, or pass ${flag}`})
}

/** Ask for a secret interactively, or explain which flag or variable replaces the prompt. */
export async function askSecret(message: string, replacement: string): Promise<string> {
  if (!canPrompt()) {
    throw usageError('E_SECRET_REQUIRED', `${message} is required and there is no terminal to ask`, {hint: replacement})
  }
  const {password} = await import('@inquirer/prompts')
  return password({message, mask: true}, {output: process.stderr})
}
