import {unavailable} from '../core/errors.js'
import {join, resolve} from 'node:path'
import {getContext, loadConfig, type ContextEntry} from './contexts.js'
import {iotctlHome} from './home.js'
import {isProcessAlive, readStackRecord} from './stack-record.js'

export interface EndpointFlags {
  /** From --database-url or IOTCTL_DATABASE_URL (oclif reads the variable into the flag). */
  databaseUrl?: string
  brokerUrl?: string
  /** From --context or IOTCTL_CONTEXT. */
  context?: string
}

export interface Endpoints {
  databaseUrl?: string
  brokerUrl?: string
  /** The service identity directory for brokerUrl (the dev stack's own, or the context's). */
  identityDir?: string
  /** Where the database URL came from, for `config view` and error messages. */
  databaseSource: 'flag' | `context:${string}` | 'dev-stack' | 'none'
}

/** Precedence: flag > env > context > defaults (the running dev stack). */
export async function resolveEndpoints(flags: EndpointFlags): Promise<Endpoints> {
  const config = await loadConfig()
  const contextName = flags.context ?? config['current-context']
  const context = contextName ? getContext(config, contextName) : undefined
  const identityDir = context?.identity
  if (flags.databaseUrl) {
    return {databaseUrl: flags.databaseUrl, brokerUrl: flags.brokerUrl ?? context?.['broker-url'], identityDir, databaseSource: 'flag'}
  }
  if (context?.['database-url']) {
    return {databaseUrl: context['database-url'], brokerUrl: flags.brokerUrl ?? context['broker-url'], identityDir, databaseSource: `context:${contextName}`}
  }
  const stack = await readStackRecord()
  if (stack && isProcessAlive(stack.pid)) {
    // The dev stack's service listener, with the identity it issued for the CLI.
    const own = !flags.brokerUrl && !context?.['broker-url'] && stack.broker
    return {databaseUrl: stack.databaseUrl, brokerUrl: flags.brokerUrl ?? context?.['broker-url'] ?? (own ? `mqtts://127.0.0.1:${own.servicePort}` : undefined),
      identityDir: identityDir ?? (own ? own.identityDir : undefined), databaseSource: 'dev-stack'}
  }
  return {brokerUrl: flags.brokerUrl ?? context?.['broker-url'], identityDir, databaseSource: 'none'}
}

export function requireDatabaseUrl(endpoints: Endpoints): string {
  if (!endpoints.databaseUrl) {
    throw unavailable('E_NO_DATABASE', 'no database configured and no dev stack is running', {
      hint: 'start one with `iotctl dev up --detach`, or pass --database-url / set IOTCTL_DATABASE_URL, or `iotctl config set-context`',
    })
  }
  return endpoints.databaseUrl
}

/** The CA directory: --ca-dir / IOTCTL_CA_DIR > the context's ca-dir > $IOTCTL_HOME/ca. */
export async function resolveCaDir(flags: {caDir?: string; context?: string}): Promise<string> {
  if (flags.caDir) return resolve(flags.caDir)
  const config = await loadConfig()
  const name = flags.context ?? config['current-context']
  const fromContext = name ? getContext(config, name)['ca-dir'] : undefined
  return fromContext ? resolve(fromContext) : join(iotctlHome(), 'ca')
}

/** The context in effect (--context / IOTCTL_CONTEXT, else the current one), if any. */
export async function currentContextEntry(flags: {context?: string}): Promise<ContextEntry | undefined> {
  const config = await loadConfig()
  const name = flags.context ?? config['current-context']
  return name ? getContext(config, name) : undefined
}
