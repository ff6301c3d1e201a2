/**
 * One answer to "is a person watching?". NO_COLOR (no-color.org), CI=true and a non-TTY
 * each switch off colour, spinners and prompts (DESIGN.md §4 Output).
 */
export interface TerminalEnv {
  env: NodeJS.ProcessEnv
  stdinIsTTY: boolean
  stdoutIsTTY: boolean
  stderrIsTTY: boolean
}

function currentTerminal(): TerminalEnv {
  return {
    env: process.env,
    stdinIsTTY: Boolean(process.stdin.isTTY),
    stdoutIsTTY: Boolean(process.stdout.isTTY),
    stderrIsTTY: Boolean(process.stderr.isTTY),
  }
}

function isCi(env: NodeJS.ProcessEnv): boolean {
  const ci = env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false'
}

/** Spinners and progress on stderr: only for a person at a terminal. */
export function canAnimate(t: TerminalEnv = currentTerminal()): boolean {
  return t.stderrIsTTY && !isCi(t.env) && t.env.NO_COLOR === undefined && t.env.TERM !== 'dumb'
}

/** Prompts need a person on both ends: stdin to answer, stderr to ask. */
export function canPrompt(t: TerminalEnv = currentTerminal()): boolean {
  return t.stdinIsTTY && t.stderrIsTTY && !isCi(t.env)
}

export function useColor(t: TerminalEnv = currentTerminal()): boolean {
  return t.stdoutIsTTY && !isCi(t.env) && t.env.NO_COLOR === undefined && t.env.TERM !== 'dumb'
}
