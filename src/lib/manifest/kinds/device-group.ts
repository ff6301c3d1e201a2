import {conflict} from '../../core/errors.js'
import {parseSelector} from '../../core/selector.js'
import {API_VERSION, type KindHandler, type ManifestDocument, type Zod} from '../types.js'

export interface DeviceGroupSpec {
  selector: string
  description?: string
}

export interface DeviceGroupLive {
  name: string
  selector: string
  description: string | null
  labels: Record<string, string>
}

const spec = (z: Zod) => z.strictObject({
  selector: z.string().describe('device selector, e.g. "site=berlin,tier!=test,firmware<2.5.0" (empty: every device)'),
  description: z.string().max(500).optional(),
})

function document(name: string, labels: Record<string, string>, selector: string, description: string | null | undefined): ManifestDocument {
  return {apiVersion: API_VERSION, kind: 'DeviceGroup', metadata: Object.keys(labels).length > 0 ? {name, labels} : {name},
    spec: {selector, ...(description ? {description} : {})}}
}

/** A named selector. Membership is never stored: it is evaluated whenever a group is used. */
export const deviceGroupKind: KindHandler<DeviceGroupSpec, DeviceGroupLive> = {
  kind: 'DeviceGroup',
  resource: 'devicegroup',
  aliases: ['devicegroups', 'group', 'groups'],
  order: 20,
  spec,
  check(object) {
    try {
      parseSelector(object.spec.selector)
      return []
    } catch (error) {
      return [{at: ['spec', 'selector'], path: 'spec.selector', message: `invalid selector: ${(error as Error).message.split('\n')[0]}`}]
    }
  },
  async loadLive(q, names) {
    const {rows} = await q.query<DeviceGroupLive>('SELECT name, selector, description, labels FROM device_groups WHERE name = ANY($1::text[])', [names])
    return new Map(rows.map((r) => [r.name, r]))
  },
  async listNames(q) {
    return (await q.query<{name: string}>('SELECT name FROM device_groups ORDER BY name')).rows.map((r) => r.name)
  },
  exportLive: (live) => document(live.name, live.labels, live.selector, live.description),
  canonical: (object) => document(object.name, object.labels, object.spec.selector, object.spec.description),
  async apply(client, entries) {
    const rows = entries.filter((e) => e.specChanged).map((e) => ({name: e.name, selector: e.object!.spec.selector,
      description: e.object!.spec.description ?? null, labels: e.object!.labels}))
    if (rows.length === 0) return
    await client.query(`INSERT INTO device_groups (name, selector, description, labels)
      SELECT r.name, r.selector, r.description, r.labels FROM jsonb_to_recordset($1::jsonb) AS r(name text, selector text, description text, labels jsonb)
      ON CONFLICT (name) DO UPDATE SET selector = EXCLUDED.selector, description = EXCLUDED.description, labels = EXCLUDED.labels, updated_at = now()`,
    [JSON.stringify(rows)])
  },
  async delete(client, entries, ctx) {
    const names = entries.map((e) => e.name)
    const {rows} = await client.query<{name: string; target_group: string}>(
      'SELECT name, target_group FROM desired_states WHERE target_group = ANY($1::text[]) ORDER BY name', [names])
    const users = rows.filter((r) => !ctx.deleting.has(`DesiredState/${r.name}`))
    if (users.length > 0) {
      throw conflict('E_GROUP_IN_USE', `devicegroup/${users[0]!.target_group} is used by desiredstate/${users.map((u) => u.name).join(', desiredstate/')}; nothing was changed`, {
        hint: 'delete those DesiredStates too (same files or run), or point them at another group',
      })
    }
    await client.query('DELETE FROM device_groups WHERE name = ANY($1::text[])', [names])
  },
}
