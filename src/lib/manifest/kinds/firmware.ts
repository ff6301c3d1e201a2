import {createHash} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {resolve} from 'node:path'
import {conflict, usageError} from '../../core/errors.js'
import {manifestErrors} from '../issues.js'
import {DEVICE_TYPE_PATTERN} from '../../registry/index.js'
import {API_VERSION, type KindHandler, type ManifestDocument, type ManifestObject, type Zod} from '../types.js'

export interface FirmwareSpec {
  deviceType: string
  version: string
  /** The image, relative to the manifest; needed to create it, optional once it exists (`get` exports sha256 instead). */
  file?: string
  sha256?: string
  minVersion?: string
  notes?: string
}

export interface FirmwareLive {
  name: string
  device_type: string
  version: string
  sha256: string
  min_version: string | null
  notes: string | null
}

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/

const spec = (z: Zod) => z.strictObject({
  deviceType: z.string().regex(DEVICE_TYPE_PATTERN, {error: 'expected a device type: 1-64 characters of a-z, 0-9, "_" and "-"'}).describe('device type the image is built for'),
  version: z.string().regex(SEMVER, {error: 'expected a semantic version such as 2.5.0 (quote it if YAML reads it as a number)'}).describe('semantic version'),
  file: z.string().min(1).optional().describe('the image, relative to this manifest (required to create it)'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, {error: 'expected 64 lowercase hex digits'}).optional().describe('SHA-256 of the image (what `get` exports; checked against file when both are given)'),
  minVersion: z.string().regex(SEMVER, {error: 'expected a semantic version'}).optional().describe('devices must run at least this version'),
  notes: z.string().max(4096).optional(),
})

/**
 * SHA-256 of a manifest's image, once per loaded object (check() and canonical() both ask): keyed by
 * the object, never by path, so a file rewritten between two applies in one process is read again.
 */
const hashes = new WeakMap<object, string | null>()
function fileHash(object: ManifestObject<FirmwareSpec>): string | undefined {
  if (!object.spec.file) return object.spec.sha256
  let hash = hashes.get(object)
  if (hash === undefined) {
    try {
      hash = createHash('sha256').update(readFileSync(resolve(object.source.dir, object.spec.file))).digest('hex')
    } catch {
      hash = null // check() reports the unreadable file with its position
    }
    hashes.set(object, hash)
  }
  return hash ?? undefined
}

function document(name: string, s: {deviceType: string; version: string; sha256?: string; minVersion?: string | null; notes?: string | null}): ManifestDocument {
  return {apiVersion: API_VERSION, kind: 'Firmware', metadata: {name},
    spec: {deviceType: s.deviceType, version: s.version, ...(s.sha256 ? {sha256: s.sha256} : {}), ...(s.minVersion ? {minVersion: s.minVersion} : {}), ...(s.notes ? {notes: s.notes} : {})}}
}

/**
 * A signed firmware image (DESIGN §6 `firmware upload`, as an object). Versions are immutable: an
 * existing Firmware whose image or fields differ is a conflict (exit 5), never replaced.
 */
export const firmwareKind: KindHandler<FirmwareSpec, FirmwareLive> = {
  kind: 'Firmware',
  resource: 'firmware',
  aliases: ['firmwares', 'fw'],
  order: 25,
  spec,
  check(object) {
    const problems = []
    if (Object.keys(object.labels).length > 0) problems.push({at: ['metadata', 'labels'], path: 'metadata.labels', message: 'Firmware has no labels; remove them'})
    if (!object.spec.file && !object.spec.sha256) problems.push({at: ['spec'], path: 'spec.file', message: 'expected file (the image) or, for an existing one, sha256'})
    if (object.spec.file) {
      const hash = fileHash(object)
      if (hash === undefined) problems.push({at: ['spec', 'file'], path: 'spec.file', message: `cannot read ${resolve(object.source.dir, object.spec.file)}`})
      else if (object.spec.sha256 && object.spec.sha256 !== hash) problems.push({at: ['spec', 'sha256'], path: 'spec.sha256', message: `the file's SHA-256 is ${hash}`})
    }
    return problems
  },
  async loadLive(q, names) {
    const {rows} = await q.query<FirmwareLive>('SELECT name, device_type, version, sha256, min_version, notes FROM firmware WHERE name = ANY($1::text[])', [names])
    return new Map(rows.map((r) => [r.name, r]))
  },
  async listNames(q) {
    return (await q.query<{name: string}>('SELECT name FROM firmware ORDER BY name')).rows.map((r) => r.name)
  },
  exportLive: (live) => document(live.name, {deviceType: live.device_type, version: live.version, sha256: live.sha256, minVersion: live.min_version, notes: live.notes}),
  canonical: (object) => document(object.name, {...object.spec, sha256: fileHash(object)}),
  async apply(client, entries, ctx) {
    const changed = entries.filter((e) => e.specChanged)
    const updated = changed.find((e) => e.live)
    if (updated) {
      throw conflict('E_FIRMWARE_IMMUTABLE', `firmware/${updated.name} exists with other contents; firmware is immutable`, {
        hint: 'give the new image a new version and a new name', data: {live: updated.live},
      })
    }
    if (changed.length === 0) return
    if (!ctx.firmware) throw usageError('E_FIRMWARE_TOOLS', 'creating Firmware needs the signing key and artifact store', {hint: 'run `iotctl apply` (it finds them under $IOTCTL_HOME)'})
    const tools = await ctx.firmware()
    const {insertFirmware} = await import('../../firmware/index.js')
    for (const e of changed) {
      const o = e.object!
      if (!o.spec.file) {
        // Only now is it known that the object does not exist: sha256 alone names an existing image.
        throw manifestErrors([{position: o.source.at(['spec']), path: 'spec.file', message: `firmware/${o.name} does not exist yet: expected file (the image) to create it`}])
      }
      // Content-addressed: storing before the commit leaves at most an unreferenced file after a rollback.
      const artifact = await tools.store.put(resolve(o.source.dir, o.spec.file!))
      await insertFirmware(client, {name: o.name, deviceType: o.spec.deviceType, version: o.spec.version, minVersion: o.spec.minVersion ?? null,
        notes: o.spec.notes, signing: tools.signing, artifact})
    }
  },
  async delete(client, entries) {
    const names = entries.map((e) => e.name)
    const {rows} = await client.query<{name: string; rollout: string}>(`SELECT f.name, r.name AS rollout FROM rollouts r JOIN firmware f USING (firmware_id)
      WHERE f.name = ANY($1::text[]) ORDER BY r.name`, [names])
    if (rows.length > 0) {
      throw conflict('E_FIRMWARE_IN_USE', `firmware/${rows[0]!.name} is used by rollout/${rows.map((r) => r.rollout).join(', rollout/')}; nothing was changed`, {
        hint: 'rollouts keep their firmware for the record; keep it in the files',
      })
    }
    await client.query('DELETE FROM firmware WHERE name = ANY($1::text[])', [names])
  },
}
