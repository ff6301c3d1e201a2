import {parseSelector} from '../../core/selector.js'
import {deviceSelectionSql, matchesSelector} from '../../registry/index.js'
import type {ManifestObject, OperationContext, Queryable} from '../types.js'
import type {DeviceGroupSpec} from './device-group.js'
import type {DeviceSpec} from './device.js'

/**
 * The devices of each group as they will be once the operation is done: groups and devices of the
 * files replace their live versions (a manifest may register devices and target their group in
 * one apply), deleted devices drop out, deprovisioned devices are never members.
 */
export async function groupMembers(q: Queryable, groups: string[], ctx: Pick<OperationContext, 'objects' | 'deleting'>): Promise<Map<string, string[]>> {
  const members = new Map<string, string[]>()
  if (groups.length === 0) return members
  const fileGroups = new Map((ctx.objects as Array<ManifestObject<DeviceGroupSpec>>).filter((o) => o.kind === 'DeviceGroup').map((o) => [o.name, o.spec.selector]))
  const {rows: liveGroups} = await q.query<{name: string; selector: string}>('SELECT name, selector FROM device_groups WHERE name = ANY($1::text[])', [groups])
  const selectors = new Map(liveGroups.map((g) => [g.name, g.selector]))
  for (const [name, selector] of fileGroups) selectors.set(name, selector)
  const fileDevices = (ctx.objects as Array<ManifestObject<DeviceSpec>>).filter((o) => o.kind === 'Device')
  const fileIds = new Set(fileDevices.map((o) => o.name))
  const {rows: liveOfFile} = await q.query<{device_id: string; status: string; firmware_version: string | null}>(
    'SELECT device_id, status, firmware_version FROM devices WHERE device_id = ANY($1::text[])', [[...fileIds]])
  const liveById = new Map(liveOfFile.map((r) => [r.device_id, r]))
  const planned = fileDevices.map((o) => ({id: o.name, device: {device_type: o.spec.type, labels: o.labels,
    status: liveById.get(o.name)?.status ?? 'active', firmware_version: o.spec.firmware ?? liveById.get(o.name)?.firmware_version ?? null}}))
  for (const group of groups) {
    const selector = selectors.get(group)
    if (selector === undefined) continue
    const params: unknown[] = []
    const where = deviceSelectionSql({selector}, params)
    const {rows} = await q.query<{device_id: string}>(`SELECT device_id FROM devices WHERE ${where} AND status <> 'deprovisioned'`, params)
    const requirements = parseSelector(selector)
    const ids = rows.map((r) => r.device_id).filter((id) => !fileIds.has(id))
    for (const p of planned) if (p.device.status !== 'deprovisioned' && matchesSelector(requirements, p.device)) ids.push(p.id)
    members.set(group, ids.filter((id) => !ctx.deleting.has(`Device/${id}`)).sort())
  }
  return members
}
