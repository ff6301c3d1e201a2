import {ExitCode, IotctlError, isIotctlError} from '../core/errors.js'

/**
 * Turn anything thrown into an IotctlError with a stable code. oclif's own parse errors are
 * usage errors (exit 2); anything unexpected is a bug (exit 70), said plainly.
 */
export function normalizeError(error: unknown): IotctlError {
  if (isIotctlError(error)) return error
  const e = error as {message?: string; oclif?: {exit?: number}; name?: string; code?: string}
  if (e?.oclif && typeof e.oclif.exit === 'number') {
    const message = (e.message ?? 'invalid usage').replace(/\nSee more help with --help$/, '')
    return new IotctlError('E_USAGE', ExitCode.usage, message, {hint: 'see --help for the flags and arguments', cause: error})
  }
  if (e?.code === 'EPIPE') return new IotctlError('E_EPIPE', ExitCode.ok, 'output closed', {cause: error})
  return new IotctlError('E_INTERNAL', ExitCode.bug, `internal error: ${e?.message ?? String(error)}`, {
    hint: 'rerun with --debug for the stack trace, and report it',
    cause: error,
  })
}

/** Human form of an error for stderr: message, then what to do next. */
export function formatError(error: IotctlError, debug: boolean): string {
  let text = `Error: ${error.message}\n`
  if (error.hint) text += `Next: ${error.hint}\n`
  if (debug) {
    text += `code: ${error.code}\n`
    const cause = (error.cause as Error | undefined)?.stack
    text += `${cause ?? error.stack ?? ''}\n`
  }
  return text
}
