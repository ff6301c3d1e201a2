/**
 * Typed errors with stable codes. Library code throws these; only the base command
 * turns them into exit codes and text (DESIGN.md §4: "Exit codes are one table").
 */
export const ExitCode = {
  ok: 0,
  diffFound: 1,
  usage: 2,
  notFound: 3,
  invalidInput: 4,
  conflict: 5,
  unavailable: 6,
  rolloutFailed: 7,
  timedOut: 8,
  bug: 70,
  interrupted: 130,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/** The exit-code table as printed in `iotctl --help` and the README. */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [number, string]> = [
  [0, 'success'],
  [1, '`diff` found changes'],
  [2, 'usage error (unknown flag, missing argument)'],
  [3, 'not found, or a precondition is not met'],
  [4, 'invalid input'],
  [5, 'conflict (already exists, version mismatch)'],
  [6, 'dependency unavailable (database, broker)'],
  [7, 'rollout aborted or failed'],
  [8, 'timed out waiting'],
  [70, 'internal error (a bug: please report it with --debug output)'],
  [130, 'interrupted'],
]

export interface ErrorDetails {
  /** What to do next; printed after the message. */
  hint?: string
  /** Extra structured data for the JSON envelope (never secrets). */
  data?: Record<string, unknown>
  cause?: unknown
}

export class IotctlError extends Error {
  readonly code: string
  readonly exitCode: ExitCodeValue
  readonly hint?: string
  readonly data?: Record<string, unknown>

  constructor(code: string, exitCode: ExitCodeValue, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : {cause: details.cause})
    this.name = 'IotctlError'
    this.code = code
    this.exitCode = exitCode
    this.hint = details.hint
    this.data = details.data
  }
}

export const usageError = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.usage, message, details)
export const notFound = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.notFound, message, details)
export const invalidInput = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.invalidInput, message, details)
export const conflict = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.conflict, message, details)
export const unavailable = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.unavailable, message, details)
export const timedOut = (code: string, message: string, details?: ErrorDetails) =>
  new IotctlError(code, ExitCode.timedOut, message, details)

export function isIotctlError(error: unknown): error is IotctlError {
  return error instanceof IotctlError
}
