import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {dirname} from 'node:path'
import {invalidInput, notFound} from '../core/errors.js'
import {configFile} from './home.js'

/** One named set of endpoints, like a kubeconfig context. */
export interface ContextEntry {
  'database-url'?: string
  'broker-url'?: string
  /** Where this context's CA lives (default $IOTCTL_HOME/ca). */
  'ca-dir'?: string
  /** Service identity directory (operator.crt, operator.key, chain.pem) for commands that speak MQTT. */
  identity?: string
  /** Where `serve` and `dev up` store telemetry: postgres, influx or postgres,influx. */
  'telemetry-sink'?: string
  /** InfluxDB endpoint for the influx sink, `telemetry setup influx` and `telemetry query` (the file is 0600: it holds the token). */
  'influx-url'?: string
  'influx-token'?: string
  'influx-org'?: string
  'influx-bucket'?: string
  /** Comma-separated device labels written as InfluxDB tags. */
  'influx-labels'?: string
}

export interface ConfigFile {
  'current-context'?: string
  contexts: Record<string, ContextEntry>
}

export const CONTEXT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/
const KNOWN_KEYS = new Set(['database-url', 'broker-url', 'ca-dir', 'identity', 'telemetry-sink', 'influx-url', 'influx-token', 'influx-org', 'influx-bucket', 'influx-labels'])

export async function loadConfig(file = configFile()): Promise<ConfigFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {contexts: {}}
    throw error
  }
  const {parse} = await import('yaml')
  let raw: unknown
  try {
    raw = parse(text, {maxAliasCount: 0})
  } catch (error) {
    throw invalidInput('E_CONFIG_FILE', `${file} is not valid YAML: ${(error as Error).message}`, {
      hint: 'fix or remove the file, then run `iotctl config set-context`',
    })
  }
  return validateConfig(raw ?? {}, file)
}

function validateConfig(raw: unknown, file: string): ConfigFile {
  const bad = (why: string) => invalidInput('E_CONFIG_FILE', `${file}: ${why}`, {hint: 'fix the file or recreate it with `iotctl config set-context`'})
  if (typeof raw !== 'object' || Array.isArray(raw) || raw === null) throw bad('expected a mapping')
  const obj = raw as Record<string, unknown>
  const contexts = obj.contexts ?? {}
  if (typeof contexts !== 'object' || contexts === null || Array.isArray(contexts)) throw bad('`contexts` must be a mapping')
  const out: ConfigFile = {contexts: {}}
  for (const [name, entry] of Object.entries(contexts as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`context ${name} must be a mapping`)
    for (const [key, value] of Object.entries(entry)) {
      if (!KNOWN_KEYS.has(key)) throw bad(`context ${name}: unknown key ${key} (known: ${[...KNOWN_KEYS].join(', ')})`)
      if (typeof value !== 'string') throw bad(`context ${name}: ${key} must be a string`)
    }
    out.contexts[name] = entry as ContextEntry
  }
  const current = obj['current-context']
  if (current !== undefined && current !== null) {
    if (typeof current !== 'string') throw bad('`current-context` must be a string')
    out['current-context'] = current
  }
  return out
}

/** Written atomically with mode 0600: a database URL may carry a password. */
export async function saveConfig(config: ConfigFile, file = configFile()): Promise<void> {
  const {stringify} = await import('yaml')
  await mkdir(dirname(file), {recursive: true, mode: 0o700})
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, stringify(config), {mode: 0o600})
  await rename(tmp, file)
}

export function assertContextName(name: string): string {
  if (!CONTEXT_NAME_PATTERN.test(name)) {
    throw invalidInput('E_CONTEXT_NAME', `invalid context name ${JSON.stringify(name)}: use letters, digits, ".", "_" or "-" (at most 63)`, {hint: 'e.g. prod, staging-eu, dev.local'})
  }
  return name
}

export function getContext(config: ConfigFile, name: string): ContextEntry {
  const entry = config.contexts[name]
  if (!entry) {
    const known = Object.keys(config.contexts)
    throw notFound('E_CONTEXT_NOT_FOUND', `no context named ${JSON.stringify(name)}`, {
      hint: known.length > 0 ? `known contexts: ${known.join(', ')}` : 'create one with `iotctl config set-context NAME --database-url …`',
    })
  }
  return entry
}
