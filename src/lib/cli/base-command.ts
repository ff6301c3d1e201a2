import {Command, type Interfaces} from './oclif.js'
import {AppContext} from '../context.js'
import {ExitCode} from '../core/errors.js'
import {errorEnvelope, renderResult, type OutputFormat, type View} from './output.js'
import {formatError, normalizeError} from './errors.js'
import {globalFlags} from './flags.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/**
 * Every command: parse → options → one lib call → render. This class owns the global flags,
 * the output envelope, and the only mapping from typed errors to exit codes.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = globalFlags
  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** Every positional argument, for commands with `strict = false` (e.g. `shadow set ID k=v…`). */
  protected positionals: string[] = []
  protected readonly warnings: string[] = []
  private appContext?: AppContext

  public override async init(): Promise<void> {
    await super.init()
    const {args, flags, argv} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.positionals = argv as string[]
    if (this.flags.debug) process.env.IOTCTL_DEBUG = '1'
  }

  protected get format(): OutputFormat {
    if (this.flags?.json) return 'json'
    return (this.flags?.output as OutputFormat | undefined) ?? 'table'
  }

  /** Machine-readable output was asked for: keep stderr chatter to warnings and errors. */
  protected get machineOutput(): boolean {
    return this.format !== 'table'
  }

  protected get ctx(): AppContext {
    this.appContext ??= new AppContext({
      databaseUrl: this.flags['database-url'],
      brokerUrl: this.flags['broker-url'],
      context: this.flags.context,
    })
    return this.appContext
  }

  protected addWarning(message: string): void {
    this.warnings.push(message)
    // CSV has no envelope to carry warnings: they go to stderr as for a person.
    if (!this.machineOutput || this.format === 'csv') process.stderr.write(`Warning: ${message}\n`)
  }

  protected async render<R>(result: unknown, view?: View<R>): Promise<void> {
    process.stdout.write(await renderResult(result, this.format, view, this.warnings))
  }

  protected override async catch(err: Error & {exitCode?: number}): Promise<void> {
    const error = normalizeError(err)
    if (error.code === 'E_EPIPE') return
    const argv = this.argv ?? []
    const debug = Boolean(this.flags?.debug) || argv.includes('--debug') || Boolean(process.env.IOTCTL_DEBUG)
    // Flags may not have parsed (a usage error): read the request for JSON from argv and the environment.
    const json = this.flags ? this.format === 'json'
      : argv.includes('--json') || /(^|\s)(-o|--output)[ =]?json\b/.test(argv.join(' ')) ||
        process.env.IOTCTL_OUTPUT === 'json' || /^(1|true)$/i.test(process.env.IOTCTL_JSON ?? '')
    if (json) process.stdout.write(JSON.stringify(errorEnvelope(error, this.warnings), null, 2) + '\n')
    // The human message always goes to stderr; in JSON mode it is the same text for people watching.
    process.stderr.write(formatError(error, debug))
    // oclif would collapse our codes under --json; exit ourselves with the table's code.
    this.exit(error.exitCode === ExitCode.ok ? ExitCode.bug : error.exitCode)
  }

  protected override async finally(err: Error | undefined): Promise<void> {
    await this.appContext?.close()
    return super.finally(err)
  }
}
