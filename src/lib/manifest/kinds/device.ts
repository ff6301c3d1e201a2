import {X509Certificate} from 'node:crypto'
import {readFile, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {assertNotReservedDeviceId} from '../../core/device-id.js'
import type {PoolClient} from '../../db/pool.js'
import {DEFAULT_DAYS, writeIssued, type IssuedCertificate} from '../../pki/index.js'
import {DEVICE_TYPE_PATTERN, firmwareKey, MAX_METADATA_BYTES} from '../../registry/index.js'
import {API_VERSION, type KindHandler, type ManifestDocument, type ManifestObject, type OperationContext, type PlanEntry, type Queryable, type Zod} from '../types.js'

export interface DeviceSpec {
  type: string
  owner?: number | null
  firmware?: string
  metadata?: Record<string, unknown>
  certificate?: {issue: boolean; out: string; days?: number}
}

export interface DeviceLive {
  device_id: string
  device_type: string
  owner_user_id: number | null
  firmware_version: string | null
  status: string
  labels: Record<string, string>
  metadata: Record<string, unknown>
}

// SemVer 2.0.0 (semver.org's recommended expression): firmware versions are exact versions, not ranges.
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/
const BATCH = 5_000
const CERT_OK = 'Device.certificateOk'
const ISSUED = 'Device.issued'

const spec = (z: Zod) => z.strictObject({
  type: z.string().regex(DEVICE_TYPE_PATTERN, {error: 'expected a device type: 1-64 characters of a-z, 0-9, "_" and "-"'}).describe('device type, e.g. thermostat'),
  owner: z.number().int().min(0).nullable().optional().describe('owner user id'),
  firmware: z.string().regex(SEMVER, {error: 'expected a semantic version such as 2.4.0 (quote it if YAML reads it as a number)'}).optional()
    .describe('installed firmware version; left as the device reports it when omitted'),
  metadata: z.record(z.string(), z.unknown()).optional().describe('free-form attributes (at most 16 KiB of JSON)'),
  certificate: z.strictObject({
    issue: z.boolean().describe('issue a client certificate when the out directory holds no valid one'),
    out: z.string().min(1).describe('directory (relative to the manifest) for OUT/<device id>/device.{key,crt} and chain.pem'),
    days: z.number().int().min(1).max(3650).optional().describe('certificate lifetime in days (default 365)'),
  }).optional(),
})

const certDir = (object: ManifestObject<DeviceSpec>) => join(resolve(object.source.dir, object.spec.certificate!.out), object.name)
const wantsCertificate = (object: ManifestObject<DeviceSpec>) => object.spec.certificate?.issue === true

function document(name: string, labels: Record<string, string>, body: Record<string, unknown>): ManifestDocument {
  return {apiVersion: API_VERSION, kind: 'Device', metadata: Object.keys(labels).length > 0 ? {name, labels} : {name}, spec: body}
}

function specBody(type: string, owner: number | null | undefined, firmware: string | null | undefined, metadata: Record<string, unknown> | undefined) {
  return {
    type,
    ...(owner === null || owner === undefined ? {} : {owner}),
    ...(firmware ? {firmware} : {}),
    ...(metadata && Object.keys(metadata).length > 0 ? {metadata} : {}),
  }
}

/** The SHA-256 fingerprint of OUT/<id>/device.crt when device.key sits next to it. */
async function certificateOnDisk(dir: string): Promise<string | undefined> {
  try {
    await stat(join(dir, 'device.key'))
    const cert = new X509Certificate(await readFile(join(dir, 'device.crt')))
    return cert.fingerprint256.replace(/:/g, '').toLowerCase()
  } catch {
    return undefined
  }
}

/** Devices whose certificate files hold an active, unexpired certificate of that device. */
async function certificatesInPlace(q: Queryable, objects: Array<ManifestObject<DeviceSpec>>): Promise<Set<string>> {
  const onDisk = await Promise.all(objects.map(async (o) => [o.name, await certificateOnDisk(certDir(o))] as const))
  const present = onDisk.filter(([, fp]) => fp !== undefined)
  if (present.length === 0) return new Set()
  const {rows} = await q.query<{device_id: string; fingerprint_sha256: string}>(`SELECT device_id, fingerprint_sha256 FROM certificates
    WHERE device_id = ANY($1::text[]) AND status = 'active' AND not_after > now()`, [present.map(([id]) => id)])
  const valid = new Set(rows.map((r) => `${r.device_id}/${r.fingerprint_sha256}`))
  return new Set(present.filter(([id, fp]) => valid.has(`${id}/${fp}`)).map(([id]) => id))
}

async function upsert(client: PoolClient, objects: Array<ManifestObject<DeviceSpec>>): Promise<void> {
  for (let i = 0; i < objects.length; i += BATCH) {
    const rows = objects.slice(i, i + BATCH).map((o) => ({
      device_id: o.name, device_type: o.spec.type, owner_user_id: o.spec.owner ?? null,
      firmware_version: o.spec.firmware ?? null, firmware_key: o.spec.firmware ? firmwareKey(o.spec.firmware) : null,
      labels: o.labels, metadata: o.spec.metadata ?? {},
    }))
    // An omitted firmware is left as the device reported it (OTA changes it, not the manifest).
    await client.query(`INSERT INTO devices (device_id, device_type, owner_user_id, firmware_version, firmware_key, labels, metadata)
      SELECT r.device_id, r.device_type, r.owner_user_id, r.firmware_version, r.firmware_key, r.labels, r.metadata
      FROM jsonb_to_recordset($1::jsonb) AS r(device_id text, device_type text, owner_user_id bigint, firmware_version text, firmware_key text, labels jsonb, metadata jsonb)
      ON CONFLICT (device_id) DO UPDATE SET device_type = EXCLUDED.device_type, owner_user_id = EXCLUDED.owner_user_id,
        firmware_version = COALESCE(EXCLUDED.firmware_version, devices.firmware_version), firmware_key = COALESCE(EXCLUDED.firmware_key, devices.firmware_key),
        labels = EXCLUDED.labels, metadata = EXCLUDED.metadata, updated_at = now(), row_version = devices.row_version + 1
      WHERE devices.status <> 'deprovisioned'`, [JSON.stringify(rows)])
  }
}

/** Issue inside the transaction; the keys stay in memory until afterCommit writes them. */
async function issueCertificates(client: PoolClient, objects: Array<ManifestObject<DeviceSpec>>, ctx: OperationContext): Promise<void> {
  if (objects.length === 0) return
  const issued: Array<{dir: string; cert: IssuedCertificate}> = []
  // Grouped by lifetime: one issuer (one CA decryption) per distinct `days`.
  const byDays = new Map<number, Array<ManifestObject<DeviceSpec>>>()
  for (const o of objects) {
    const days = o.spec.certificate!.days ?? DEFAULT_DAYS
    byDays.set(days, [...(byDays.get(days) ?? []), o])
  }
  for (const [days, group] of byDays) {
    const issue = await ctx.issuer(days)
    const certs = await issue(client, group.map((o) => o.name))
    certs.forEach((cert, i) => issued.push({dir: certDir(group[i]!), cert}))
  }
  // The certificate in the out directory is the device's certificate: one whose files are gone is retired.
  await client.query(`UPDATE certificates SET status = 'revoked', revoked_at = now(), revocation_reason = 'superseded'
    WHERE device_id = ANY($1::text[]) AND status = 'active' AND serial <> ALL($2::text[])`,
  [objects.map((o) => o.name), issued.map((i) => i.cert.record.serial)])
  ctx.memo.set(ISSUED, issued)
}

export const deviceKind: KindHandler<DeviceSpec, DeviceLive> = {
  kind: 'Device',
  resource: 'device',
  aliases: ['devices', 'dev'],
  order: 10,
  spec,
  check(object) {
    const problems = []
    try {
      assertNotReservedDeviceId(object.name)
    } catch (error) {
      problems.push({at: ['metadata', 'name'], path: 'metadata.name', message: (error as Error).message})
    }
    const size = Buffer.byteLength(JSON.stringify(object.spec.metadata ?? {}))
    if (size > MAX_METADATA_BYTES) problems.push({at: ['spec', 'metadata'], path: 'spec.metadata', message: `metadata is ${size} bytes of JSON; expected at most ${MAX_METADATA_BYTES}`})
    return problems
  },
  async loadLive(q, names, ctx) {
    const {rows} = await q.query<DeviceLive & {owner_user_id: string | null}>(`SELECT device_id, device_type, owner_user_id, firmware_version, status, labels, metadata
      FROM devices WHERE device_id = ANY($1::text[])`, [names])
    const wanting = (ctx.objects as Array<ManifestObject<DeviceSpec>>).filter((o) => o.kind === 'Device' && wantsCertificate(o))
    ctx.memo.set(CERT_OK, await certificatesInPlace(q, wanting))
    return new Map(rows.map((r) => [r.device_id, {...r, owner_user_id: r.owner_user_id === null ? null : Number(r.owner_user_id)}]))
  },
  async listNames(q) {
    const {rows} = await q.query<{device_id: string}>(`SELECT device_id FROM devices WHERE status <> 'deprovisioned' ORDER BY device_id`)
    return rows.map((r) => r.device_id)
  },
  exportLive: (live) => document(live.device_id, live.labels, specBody(live.device_type, live.owner_user_id, live.firmware_version, live.metadata)),
  canonical: (object, live) => document(object.name, object.labels,
    specBody(object.spec.type, object.spec.owner, object.spec.firmware ?? live?.firmware_version, object.spec.metadata)),
  pending(object, _live, ctx) {
    if (!wantsCertificate(object) || (ctx.memo.get(CERT_OK) as Set<string> | undefined)?.has(object.name)) return []
    return [`certificate: no valid certificate in ${certDir(object)}; one will be issued`]
  },
  gone: (live) => live.status === 'deprovisioned',
  blocked: (live, action) => action === 'apply' && live.status === 'deprovisioned'
    ? `device ${live.device_id} is deprovisioned and kept for audit only; register a new device id` : undefined,
  async apply(client, entries, ctx) {
    await upsert(client, entries.filter((e) => e.specChanged).map((e) => e.object!))
    const needCerts = entries.filter((e) => e.reasons.some((r) => r.startsWith('certificate:'))).map((e) => e.object!)
    await issueCertificates(client, needCerts, ctx)
  },
  async delete(client, entries) {
    const ids = entries.map((e) => e.name)
    // Deprovisioned, never erased: the row stays for audit and its certificates are revoked (as `devices deprovision` does).
    await client.query(`UPDATE devices SET status = 'deprovisioned', updated_at = now(), row_version = row_version + 1
      WHERE device_id = ANY($1::text[]) AND status <> 'deprovisioned'`, [ids])
    await client.query(`UPDATE certificates SET status = 'revoked', revoked_at = now(), revocation_reason = 'cessationOfOperation'
      WHERE device_id = ANY($1::text[]) AND status = 'active'`, [ids])
  },
  async afterCommit(_entries: Array<PlanEntry<DeviceSpec, DeviceLive>>, ctx) {
    const issued = (ctx.memo.get(ISSUED) as Array<{dir: string; cert: IssuedCertificate}> | undefined) ?? []
    const notes: string[] = []
    for (const {dir, cert} of issued) {
      await writeIssued(dir, cert)
      notes.push(`device/${cert.record.subject_name}: certificate ${cert.record.serial} written to ${dir} (device.key 0600, device.crt, chain.pem)`)
    }
    return notes
  },
}
