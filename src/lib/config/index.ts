import {maskUrl} from '../core/url.js'
import {invalidInput} from '../core/errors.js'
import {assertContextName, getContext, loadConfig, saveConfig, type ContextEntry} from './contexts.js'
import {configFile} from './home.js'
import {resolveEndpoints, type EndpointFlags} from './resolve.js'

export {iotctlHome} from './home.js'
export {currentContextEntry, resolveCaDir, resolveEndpoints, requireDatabaseUrl, type EndpointFlags, type Endpoints} from './resolve.js'

export interface ConfigView {
  file: string
  current_context: string | null
  contexts: Array<{name: string; current: boolean; database_url?: string; broker_url?: string; telemetry_sink?: string; influx_url?: string; influx_token?: string}>
  effective: {database_url: string | null; database_source: string; broker_url: string | null}
}

/** The config as a person may see it: every URL masked, plus what this invocation would use. */
export async function viewConfig(flags: EndpointFlags): Promise<ConfigView> {
  const config = await loadConfig()
  const current = flags.context ?? config['current-context'] ?? null
  const effective = await resolveEndpoints(flags)
  return {
    file: configFile(),
    current_context: current,
    contexts: Object.entries(config.contexts).map(([name, c]) => ({
      name,
      current: name === current,
      database_url: c['database-url'] && maskUrl(c['database-url']),
      broker_url: c['broker-url'] && maskUrl(c['broker-url']),
      telemetry_sink: c['telemetry-sink'],
      influx_url: c['influx-url'] && maskUrl(c['influx-url']),
      influx_token: c['influx-token'] && '***', // set or not; never the token
    })),
    effective: {
      database_url: effective.databaseUrl ? maskUrl(effective.databaseUrl) : null,
      database_source: effective.databaseSource,
      broker_url: effective.brokerUrl ? maskUrl(effective.brokerUrl) : null,
    },
  }
}

export async function useContext(name: string): Promise<{current_context: string}> {
  const config = await loadConfig()
  getContext(config, name) // exit 3 with the known names
  config['current-context'] = name
  await saveConfig(config)
  return {current_context: name}
}

function assertUrl(value: string, protocols: string[], flag: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalidInput('E_URL', `${flag} ${JSON.stringify(maskUrl(value))} is not a URL`, {hint: `e.g. ${protocols[0]}//host:port`})
  }
  if (!protocols.includes(url.protocol)) {
    throw invalidInput('E_URL', `${flag} must use ${protocols.join(' or ')}, not ${url.protocol}`, {hint: `e.g. ${protocols[0]}//host:port`})
  }
  return value
}

/** Create or change a context; fields not given stay as they were. */
export async function setContext(name: string, entry: ContextEntry, options: {use: boolean}): Promise<{name: string; created: boolean}> {
  assertContextName(name)
  if (entry['database-url']) assertUrl(entry['database-url'], ['postgres:', 'postgresql:'], '--database-url')
  if (entry['broker-url']) assertUrl(entry['broker-url'], ['mqtt:', 'mqtts:', 'ws:', 'wss:'], '--broker-url')
  if (entry['influx-url']) assertUrl(entry['influx-url'], ['http:', 'https:'], '--influx-url')
  if (entry['telemetry-sink'] !== undefined && !/^(postgres|influx)(,(postgres|influx))?$/.test(entry['telemetry-sink'])) {
    throw invalidInput('E_TELEMETRY_SINK', `--telemetry-sink ${JSON.stringify(entry['telemetry-sink'])} is not postgres, influx or postgres,influx`, {hint: 'e.g. --telemetry-sink postgres,influx'})
  }
  const config = await loadConfig()
  const created = !config.contexts[name]
  config.contexts[name] = {...config.contexts[name], ...Object.fromEntries(Object.entries(entry).filter(([, v]) => v !== undefined))}
  // Like `kubectl config set-context`: only --use switches; a new context never silently takes over.
  if (options.use) config['current-context'] = name
  await saveConfig(config)
  return {name, created}
}
