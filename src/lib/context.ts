import type {Database} from './db/pool.js'
import {currentContextEntry, requireDatabaseUrl, resolveEndpoints, type EndpointFlags, type Endpoints} from './config/resolve.js'
import {unavailable, usageError} from './core/errors.js'
import {parseSinkKinds, SINK_KINDS, type InfluxSettings} from './telemetry/sinks/types.js'
import type {SinkSelection} from './telemetry/sinks/index.js'
import type {TlsIdentity} from './mqtt/client.js'
import {readIdentityDir} from './mqtt/identity.js'

export type {Database} from './db/pool.js'

/** `--telemetry-sink` and `--influx-*` as parsed (flag or IOTCTL_* variable); unset keys fall back to the context. */
export type SinkValues = Partial<Record<'telemetry-sink' | 'influx-url' | 'influx-token' | 'influx-org' | 'influx-bucket' | 'influx-labels', string>>

/**
 * The one place that wires adapters together, lazily: a command that never touches the
 * database never loads `pg`, and the first one that does gets a migrated schema.
 */
export class AppContext {
  private endpointsPromise?: Promise<Endpoints>
  private databasePromise?: Promise<Database>

  constructor(private readonly flags: EndpointFlags) {}

  endpoints(): Promise<Endpoints> {
    this.endpointsPromise ??= resolveEndpoints(this.flags)
    return this.endpointsPromise
  }

  database(): Promise<Database> {
    this.databasePromise ??= this.openDatabase()
    return this.databasePromise
  }

  private async openDatabase(): Promise<Database> {
    const url = requireDatabaseUrl(await this.endpoints())
    const {createPool} = await import('./db/pool.js')
    const {migrate} = await import('./db/migrate.js')
    const pool = await createPool(url)
    try {
      await migrate(pool, url)
    } catch (error) {
      await pool.end().catch(() => undefined)
      throw error
    }
    return {pool, url}
  }

  /** The broker's service listener and this CLI's identity for it (dev stack, or the context's). */
  async broker(): Promise<{url: string; tls?: TlsIdentity}> {
    const endpoints = await this.endpoints()
    if (!endpoints.brokerUrl) {
      throw unavailable('E_NO_BROKER', 'no broker configured and no dev stack is running', {
        hint: 'start one with `iotctl dev up --detach`, or pass --broker-url with a context identity (`iotctl config set-context NAME --broker-url … --identity DIR`)',
      })
    }
    const tls = endpoints.identityDir ? await readIdentityDir(endpoints.identityDir) : undefined
    if (endpoints.brokerUrl.startsWith('mqtts:') && !tls) {
      throw usageError('E_IDENTITY', `${endpoints.brokerUrl} needs a service identity`, {hint: 'iotctl certs issue --operator me --out ~/.iotctl/me && iotctl config set-context NAME --identity ~/.iotctl/me'})
    }
    return {url: endpoints.brokerUrl, tls}
  }

  /**
   * The telemetry sinks and InfluxDB endpoint: each setting from its flag (or IOTCTL_* variable),
   * else from the context, else postgres alone. Validated later, before anything connects.
   */
  async sinkSelection(values: SinkValues): Promise<SinkSelection> {
    const context = await currentContextEntry({context: this.flags.context})
    const text = values['telemetry-sink'] ?? context?.['telemetry-sink'] ?? 'postgres'
    const kinds = parseSinkKinds(text)
    if (!kinds) {
      throw usageError('E_TELEMETRY_SINK', `unknown telemetry sink ${JSON.stringify(text)}`, {hint: `choose from ${SINK_KINDS.join(', ')}, or both: --telemetry-sink postgres,influx`})
    }
    const influx = await this.influxSettings(values)
    return {kinds, ...(influx ? {influx} : {})}
  }

  /** The InfluxDB endpoint from flags, variables and the context; undefined when none is set at all. */
  async influxSettings(values: SinkValues): Promise<InfluxSettings | undefined> {
    const context = await currentContextEntry({context: this.flags.context})
    const pick = (key: 'influx-url' | 'influx-token' | 'influx-org' | 'influx-bucket' | 'influx-labels') => values[key] ?? context?.[key]
    if (!['influx-url', 'influx-token', 'influx-org', 'influx-bucket'].some((k) => pick(k as 'influx-url'))) return undefined
    return {url: pick('influx-url') ?? '', token: pick('influx-token') ?? '', org: pick('influx-org') ?? '', bucket: pick('influx-bucket') ?? '',
      labels: (pick('influx-labels') ?? '').split(',').map((l) => l.trim()).filter(Boolean)}
  }

  async close(): Promise<void> {
    if (!this.databasePromise) return
    const db = await this.databasePromise.catch(() => undefined)
    this.databasePromise = undefined
    await db?.pool.end()
  }
}
