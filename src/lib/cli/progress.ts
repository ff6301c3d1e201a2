import {canAnimate} from './terminal.js'

export interface Progress {
  update(text: string): void
  succeed(text: string): void
  fail(text: string): void
  stop(): void
}

/** Plain lines on stderr: what a log file or CI shows instead of a spinner. */
class PlainProgress implements Progress {
  constructor(private readonly quiet: boolean) {}
  update(text: string): void {
    if (!this.quiet) process.stderr.write(`${text}\n`)
  }
  succeed(text: string): void {
    if (!this.quiet) process.stderr.write(`${text}\n`)
  }
  fail(): void {
    // Without a spinner to close, the error that follows says it all: stderr starts with "Error:".
  }
  stop(): void {}
}

/**
 * A spinner on stderr when a person watches (ora, loaded only then), plain lines otherwise.
 * `quiet` keeps plain-mode chatter off for machine output (-o json).
 */
export async function startProgress(text: string, options: {quiet?: boolean} = {}): Promise<Progress> {
  if (!canAnimate()) {
    // Without a terminal only the outcome is worth a line: no "starting…" chatter before an error.
    return new PlainProgress(options.quiet ?? false)
  }
  const {default: ora} = await import('ora')
  const spinner = ora({text, stream: process.stderr}).start()
  return {
    update: (t) => {
      spinner.text = t
    },
    succeed: (t) => spinner.succeed(t),
    fail: (t) => spinner.fail(t),
    stop: () => spinner.stop(),
  }
}

export function notice(text: string): void {
  process.stderr.write(`${text}\n`)
}
