import {spawn} from 'node:child_process'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

export const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout parsed as the JSON envelope {status, result|error, warnings}. */
  json: <T = any>() => {status: number; result: T; error?: {code: string; message: string; hint?: string}; warnings: string[]}
}

export interface CliOptions {
  env?: Record<string, string | undefined>
  input?: string
  timeoutMs?: number
}

/** Run the built CLI (bin/run.js → dist/) as a user would, without a TTY and with CI=true. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // NODE_ENV=test (set by vitest) would make oclif load src/ through tsx instead of dist/.
    const env: Record<string, string | undefined> = {...process.env, NODE_ENV: undefined, CI: 'true', NO_COLOR: '1', ...options.env}
    for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
    const child = spawn(process.execPath, [BIN, ...args], {env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe']})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr, json: () => JSON.parse(stdout)})
    })
    child.stdin.end(options.input ?? '')
  })
}

/** An empty IOTCTL_HOME so no test sees the user's contexts or dev stack. */
export async function tempHome(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'iotctl-home-'))
}
