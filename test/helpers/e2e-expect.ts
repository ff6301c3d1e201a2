import {expect} from 'vitest'
import {runCli, tempHome, type CliOptions, type CliResult} from './cli.js'

export interface ErrorBody {
  code: string
  message: string
  hint?: string
  data?: Record<string, unknown>
}

/** What a run looked like, for assertion messages: exit code, stdout and stderr. */
export function describeRun(r: CliResult): string {
  return `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`
}

/** Exit 0 with a `{status: 0, result, warnings}` envelope on stdout; returns result. */
export function expectOk<T = any>(r: CliResult): T {
  expect(r.code, describeRun(r)).toBe(0)
  const envelope = r.json<T>()
  expect(envelope.status).toBe(0)
  expect(Array.isArray(envelope.warnings)).toBe(true)
  return envelope.result
}

/**
 * The human half of an error: `Error: …` then a `Next: …` line on stderr, and no stack trace
 * (there was no --debug). With `atStart`, stderr holds nothing before the error.
 */
export function expectHumanError(r: CliResult, options: {atStart?: boolean} = {}): void {
  if (options.atStart ?? true) expect(r.stderr, describeRun(r)).toMatch(/^Error: /)
  else expect(r.stderr, describeRun(r)).toMatch(/^Error: /m)
  expect(r.stderr, describeRun(r)).toMatch(/\nNext: \S/)
  expect(r.stderr, describeRun(r)).not.toMatch(/\n\s+at /)
}

/**
 * A run with --json / -o json that failed: exit code, the `{status, error: {code, message, hint},
 * warnings}` envelope on stdout, and the human text on stderr. Returns the error body.
 */
export function expectJsonError(r: CliResult, exit: number, code: string, options: {atStart?: boolean} = {}): ErrorBody {
  expect(r.code, describeRun(r)).toBe(exit)
  let envelope: ReturnType<CliResult['json']>
  try {
    envelope = r.json()
  } catch {
    throw new Error(`stdout is not a JSON envelope:\n${describeRun(r)}`)
  }
  expect(envelope.status).toBe(exit)
  expect(envelope.error?.code, describeRun(r)).toBe(code)
  expect(typeof envelope.error?.message).toBe('string')
  expect(Array.isArray(envelope.warnings)).toBe(true)
  expect('result' in envelope).toBe(false)
  expectHumanError(r, options)
  return envelope.error as ErrorBody
}

/** A failed run without machine output: nothing on stdout, the human error on stderr. */
export function expectPlainError(r: CliResult, exit: number, options: {atStart?: boolean} = {}): void {
  expect(r.code, describeRun(r)).toBe(exit)
  expect(r.stdout, describeRun(r)).toBe('')
  expectHumanError(r, options)
}

/**
 * The environment of a user's shell, not of the test runner: no IOTCTL_* leaking in, and no
 * NODE_ENV. Vitest sets NODE_ENV=test, and under it oclif's tsPath runs src/**.ts through tsx
 * instead of the built dist/ (about three times slower, and not what users run).
 */
export const USER_ENV: Record<string, string | undefined> = {NODE_ENV: undefined, IOTCTL_HOME: undefined,
  IOTCTL_DATABASE_URL: undefined, IOTCTL_CONTEXT: undefined, IOTCTL_OUTPUT: undefined, IOTCTL_YES: undefined,
  IOTCTL_DEBUG: undefined, IOTCTL_BROKER_URL: undefined, IOTCTL_CA_PASSPHRASE: undefined, IOTCTL_JSON: undefined,
  IOTCTL_TELEMETRY_SINK: undefined, IOTCTL_INFLUX_URL: undefined, IOTCTL_INFLUX_TOKEN: undefined, IOTCTL_INFLUX_ORG: undefined,
  IOTCTL_INFLUX_BUCKET: undefined, IOTCTL_INFLUX_LABELS: undefined}

/** A `runCli` bound to one isolated IOTCTL_HOME and (optionally) one database URL. */
export async function boundCli(databaseUrl?: string, extraEnv: Record<string, string | undefined> = {}) {
  const home = await tempHome()
  const env = {...USER_ENV, IOTCTL_HOME: home, IOTCTL_DATABASE_URL: databaseUrl, ...extraEnv}
  const cli = (args: string[], options: CliOptions = {}) => runCli(args, {...options, env: {...env, ...options.env}})
  return {home, env, cli}
}

/** Run `fn` over `items` with at most `limit` at a time (two cores: keep spawned CLIs few). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker))
  return out
}

/** The bound CLI runner every e2e suite uses. */
export type Cli = Awaited<ReturnType<typeof boundCli>>['cli']
