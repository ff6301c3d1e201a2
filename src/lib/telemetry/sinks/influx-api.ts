import {notFound, type IotctlError} from '../../core/errors.js'
import {maskUrl} from '../../core/url.js'
import {bucketSpecs, planInfluxSetup, ROLLUP_TIERS, taskName, type ExistingBucket, type ExistingTask, type SetupAction} from '../flux.js'
import {influxFailed} from './errors.js'
import {classifyInfluxError} from './influx.js'
import type {InfluxSettings} from './types.js'

/**
 * InfluxDB 2.x management and Flux queries through the client's transport (the one HTTP stack
 * the sink uses). Covered only by the Flux-text unit tests: VictoriaMetrics serves no Flux and no
 * /api/v2/buckets, so these paths need a real InfluxDB 2.x (README).
 */
async function connect(settings: InfluxSettings) {
  const client = await import('@influxdata/influxdb-client')
  const influx = new client.InfluxDB({url: settings.url, token: settings.token, timeout: 30_000})
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    try {
      return (await influx.transport.request(path, body === undefined ? null : body, {method, headers: {'content-type': 'application/json'}})) as T
    } catch (error) {
      throw influxFailed(classifyInfluxError(error, settings.url, client.HttpError), `${method} ${path.split('?')[0]}`)
    }
  }
  return {influx, call}
}

async function orgId(call: <T>(method: string, path: string) => Promise<T>, settings: InfluxSettings): Promise<string> {
  // InfluxDB answers an unknown org with 404 or an empty list; any other failure (a bad token) stays as it is.
  const {orgs} = await call<{orgs?: Array<{id: string}>}>('GET', `/api/v2/orgs?org=${encodeURIComponent(settings.org)}`)
    .catch((error: IotctlError) => {
      if (error.data?.status === 404) return {orgs: []}
      throw error
    })
  if (!orgs?.[0]) {
    throw notFound('E_INFLUX_ORG', `InfluxDB at ${maskUrl(settings.url)} has no organization ${JSON.stringify(settings.org)}`, {hint: 'check --influx-org (create it with `influx org create`)'})
  }
  return orgs[0].id
}

export interface InfluxSetupResult {
  org: string
  bucket: string
  actions: Array<{action: SetupAction['kind']; name: string}>
}

/** `telemetry setup influx`: buckets with retention and the rollup tasks, idempotently. */
export async function setupInflux(settings: InfluxSettings): Promise<InfluxSetupResult> {
  const {call} = await connect(settings)
  const orgID = await orgId(call, settings)
  const q = encodeURIComponent
  const existingBuckets: ExistingBucket[] = []
  const tasks: ExistingTask[] = []
  for (const spec of bucketSpecs(settings.bucket)) {
    type Listed = {buckets?: Array<{id: string; name: string; retentionRules?: Array<{everySeconds: number}>}>}
    const {buckets = []} = await call<Listed>('GET', `/api/v2/buckets?orgID=${q(orgID)}&name=${q(spec.name)}`)
    existingBuckets.push(...buckets.map((b) => ({id: b.id, name: b.name, everySeconds: b.retentionRules?.[0]?.everySeconds ?? 0})))
  }
  for (const tier of ROLLUP_TIERS) {
    const {tasks: found = []} = await call<{tasks?: ExistingTask[]}>('GET', `/api/v2/tasks?orgID=${q(orgID)}&name=${q(taskName(settings.bucket, tier))}`)
    tasks.push(...found)
  }
  const actions = planInfluxSetup(settings.bucket, settings.org, {buckets: existingBuckets, tasks})
  for (const a of actions) {
    const rules = (every: number) => (every === 0 ? [] : [{type: 'expire', everySeconds: every}])
    if (a.kind === 'create-bucket') await call('POST', '/api/v2/buckets', {orgID, name: a.bucket.name, retentionRules: rules(a.bucket.everySeconds)})
    if (a.kind === 'update-bucket') await call('PATCH', `/api/v2/buckets/${q(a.id)}`, {retentionRules: rules(a.bucket.everySeconds)})
    if (a.kind === 'create-task') await call('POST', '/api/v2/tasks', {orgID, flux: a.flux, status: 'active', description: 'iotctl telemetry rollup'})
    if (a.kind === 'update-task') await call('PATCH', `/api/v2/tasks/${q(a.id)}`, {flux: a.flux, status: 'active'})
  }
  return {org: settings.org, bucket: settings.bucket, actions: actions.map((a) => ({action: a.kind, name: 'bucket' in a ? a.bucket.name : a.name}))}
}

/** Run a Flux query; rows as the client's `collectRows` gives them (`_time`, `_value`, …). */
export async function queryInflux(settings: InfluxSettings, flux: string): Promise<Array<Record<string, unknown>>> {
  const client = await import('@influxdata/influxdb-client')
  const api = new client.InfluxDB({url: settings.url, token: settings.token, timeout: 60_000}).getQueryApi(settings.org)
  try {
    return await api.collectRows<Record<string, unknown>>(flux)
  } catch (error) {
    throw influxFailed(classifyInfluxError(error, settings.url, client.HttpError), 'Flux query')
  }
}
