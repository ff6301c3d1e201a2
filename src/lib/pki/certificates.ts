import {join} from 'node:path'
import {invalidInput, notFound} from '../core/errors.js'
import {assertDeviceId} from '../core/device-id.js'
import {connectClient, withTransaction, type Database, type Pool, type PoolClient} from '../db/pool.js'
import {chainPem, loadSigningCa, type SigningCa} from './ca.js'
import {writeCrls, type CrlInfo} from './crl.js'
import {assertDays, assertIssuable, signLeaves, type IssuedCertificate} from './issue.js'
import {CERT_COLUMNS, fromCertRow, REVOCATION_REASONS, type CertificateRecord, type RevocationReason} from './store.js'

export interface PkiOptions {
  caDir: string
  passphrase: string
}

export type DeviceIssuer = (client: PoolClient, deviceIds: string[]) => Promise<IssuedCertificate[]>

/** Decrypt the device CA once; the returned function issues inside the caller's transaction. */
export async function deviceIssuer(options: PkiOptions & {csrPem?: string; days: number}): Promise<DeviceIssuer> {
  assertDays(options.days)
  const ca = await loadSigningCa(options.caDir, 'device-ca', options.passphrase)
  const chain = await chainPem(options.caDir, 'device-ca')
  return async (client, deviceIds) => {
    await assertIssuable(client, deviceIds)
    return signLeaves(client, ca, chain, deviceIds.map((id) => ({kind: 'device', name: id, csrPem: options.csrPem, days: options.days})))
  }
}

export async function issueDeviceCertificates(db: Database, options: PkiOptions & {deviceIds: string[]; csrPem?: string; days: number}): Promise<IssuedCertificate[]> {
  const issue = await deviceIssuer(options)
  return withTransaction(db.pool, db.url, (client) => issue(client, options.deviceIds))
}

/** Service identities (CLI, ingest, controller) come only from the service intermediate. */
export async function issueOperatorCertificate(db: Database, options: PkiOptions & {name: string; csrPem?: string; days: number}): Promise<IssuedCertificate> {
  assertDays(options.days)
  assertDeviceId(options.name, 'operator name')
  const ca = await loadSigningCa(options.caDir, 'service-ca', options.passphrase)
  const chain = await chainPem(options.caDir, 'service-ca')
  return withTransaction(db.pool, db.url, async (client) =>
    (await signLeaves(client, ca, chain, [{kind: 'operator', name: options.name, csrPem: options.csrPem, days: options.days}]))[0]!)
}

export interface ListCertificatesOptions {
  deviceId?: string
  expiringWithinMs?: number
  status?: 'active' | 'revoked'
  limit: number
}

export async function listCertificates(db: Database, options: ListCertificatesOptions): Promise<CertificateRecord[]> {
  const where: string[] = []
  const params: unknown[] = []
  if (options.deviceId) where.push(`device_id = $${params.push(assertDeviceId(options.deviceId))}`)
  if (options.status) where.push(`status = $${params.push(options.status)}`)
  if (options.expiringWithinMs !== undefined) {
    where.push(`status = 'active' AND not_after <= now() + ($${params.push(options.expiringWithinMs)} || ' milliseconds')::interval`)
  }
  params.push(options.limit)
  const client = await connectClient(db.pool, db.url)
  try {
    const {rows} = await client.query(`SELECT ${CERT_COLUMNS} FROM certificates ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
      ORDER BY not_after, serial LIMIT $${params.length}`, params)
    return rows.map(fromCertRow)
  } finally {
    client.release()
  }
}

export function assertReason(reason: string): RevocationReason {
  if (!(REVOCATION_REASONS as readonly string[]).includes(reason)) {
    throw invalidInput('E_REVOCATION_REASON', `unknown revocation reason ${JSON.stringify(reason)}`, {hint: `one of: ${REVOCATION_REASONS.join(', ')}`})
  }
  return reason as RevocationReason
}

/** Revoke by serial or every active certificate of a device. Revoking twice changes nothing. */
export async function revokeCertificates(db: Database, target: {serial?: string; deviceId?: string}, reason: RevocationReason): Promise<CertificateRecord[]> {
  return withTransaction(db.pool, db.url, async (client) => {
    const byDevice = target.deviceId !== undefined
    const key = byDevice ? assertDeviceId(target.deviceId!) : normaliseSerial(target.serial ?? '')
    const {rows} = await client.query(`UPDATE certificates SET status = 'revoked',
        revoked_at = COALESCE(revoked_at, now()), revocation_reason = COALESCE(revocation_reason, $2)
      WHERE ${byDevice ? 'device_id' : 'serial'} = $1 RETURNING ${CERT_COLUMNS}`, [key, reason])
    if (rows.length === 0) {
      throw notFound('E_CERT_NOT_FOUND', byDevice ? `device ${key} has no certificates` : `no certificate with serial ${key}`, {hint: 'list them with `iotctl certs list`'})
    }
    return rows.map(fromCertRow)
  })
}

export function normaliseSerial(serial: string): string {
  const s = serial.toLowerCase().replace(/:/g, '')
  if (!/^[0-9a-f]{16,40}$/.test(s)) throw invalidInput('E_SERIAL', `invalid serial ${JSON.stringify(serial)}: 16-40 hex digits`, {hint: 'copy it from `iotctl certs list`'})
  return s
}

/**
 * Rotation: issue a new certificate while the old ones stay valid; the old ones are revoked as
 * superseded once the device connects with the new one (supersedePredecessors, called by the
 * broker) or when the grace period ends (sweepSuperseded, run by `certs crl` and the services).
 */
export async function rotateDeviceCertificate(db: Database, options: PkiOptions & {deviceId: string; graceMs: number; days: number}): Promise<{issued: IssuedCertificate; superseding: string[]}> {
  const [issued] = await issueDeviceCertificates(db, {...options, deviceIds: [options.deviceId]})
  const {rows} = await db.pool.query<{serial: string}>(`UPDATE certificates SET replaced_by = $2,
      supersede_after = now() + ($3 || ' milliseconds')::interval
    WHERE device_id = $1 AND status = 'active' AND serial <> $2 AND replaced_by IS NULL RETURNING serial`,
  [options.deviceId, issued!.record.serial, options.graceMs])
  return {issued: issued!, superseding: rows.map((r) => r.serial)}
}

export async function supersedePredecessors(client: PoolClient | Pool, serial: string): Promise<string[]> {
  const {rows} = await client.query<{serial: string}>(`UPDATE certificates SET status = 'revoked', revoked_at = now(),
      revocation_reason = 'superseded' WHERE ltrim(replaced_by, '0') = ltrim($1, '0') AND status = 'active' RETURNING serial`, [serial])
  return rows.map((r) => r.serial)
}

export async function sweepSuperseded(client: PoolClient): Promise<string[]> {
  const {rows} = await client.query<{serial: string}>(`UPDATE certificates SET status = 'revoked', revoked_at = now(),
      revocation_reason = 'superseded' WHERE status = 'active' AND supersede_after <= now() RETURNING serial`)
  return rows.map((r) => r.serial)
}

/** `certs crl`: sweep expired rotations, then sign fresh CRLs for the root and both intermediates. */
export async function publishCrls(db: Database, options: PkiOptions & {outDir?: string}): Promise<CrlInfo[]> {
  const cas: SigningCa[] = []
  for (const role of ['root', 'device-ca', 'service-ca'] as const) cas.push(await loadSigningCa(options.caDir, role, options.passphrase))
  return withTransaction(db.pool, db.url, async (client) => {
    await sweepSuperseded(client)
    return writeCrls(client, cas, options.outDir ?? join(options.caDir, 'crl'))
  })
}
