import type {PoolClient} from '../db/pool.js'
import {invalidInput} from '../core/errors.js'

export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const
export type RevocationReason = (typeof REVOCATION_REASONS)[number]

export interface CertificateRecord {
  serial: string
  issuer: 'device-ca' | 'service-ca'
  kind: 'device' | 'operator'
  device_id: string | null
  subject_name: string
  fingerprint_sha256: string
  public_key_sha256: string
  not_before: string
  not_after: string
  status: 'active' | 'revoked'
  revoked_at: string | null
  revocation_reason: string | null
  replaced_by: string | null
  supersede_after: string | null
}

export const CERT_COLUMNS = `serial, issuer, kind, device_id, subject_name, fingerprint_sha256, public_key_sha256,
  not_before, not_after, status, revoked_at, revocation_reason, replaced_by, supersede_after`

type Row = Omit<CertificateRecord, 'not_before' | 'not_after' | 'revoked_at' | 'supersede_after'> &
  {not_before: Date; not_after: Date; revoked_at: Date | null; supersede_after: Date | null}

export function fromCertRow(row: Row): CertificateRecord {
  return {...row, not_before: row.not_before.toISOString(), not_after: row.not_after.toISOString(),
    revoked_at: row.revoked_at?.toISOString() ?? null, supersede_after: row.supersede_after?.toISOString() ?? null}
}

export type NewCertificate = Pick<CertificateRecord, 'serial' | 'issuer' | 'kind' | 'device_id' | 'subject_name' | 'fingerprint_sha256' | 'public_key_sha256'> &
  {not_before: Date; not_after: Date}

/** One key, one identity: a public key already certified for another subject is refused (exit 4). */
export async function assertKeyUnused(client: PoolClient, publicKeySha256: string, subject: string): Promise<void> {
  const {rows} = await client.query<{subject_name: string}>(
    'SELECT subject_name FROM certificates WHERE public_key_sha256 = $1 AND subject_name <> $2 LIMIT 1', [publicKeySha256, subject])
  if (rows.length > 0) {
    throw invalidInput('E_KEY_REUSED', `this public key is already certified for ${rows[0]!.subject_name}`, {
      hint: 'every device must generate its own key pair; create a new CSR with a fresh key',
    })
  }
}

/** Record issued certificates: one INSERT per 5,000 through unnest, in the caller's transaction. */
export async function insertCertificates(client: PoolClient, certs: NewCertificate[]): Promise<CertificateRecord[]> {
  const out: CertificateRecord[] = []
  for (let i = 0; i < certs.length; i += 5000) {
    const batch = certs.slice(i, i + 5000)
    const col = <K extends keyof NewCertificate>(k: K) => batch.map((c) => c[k])
    const {rows} = await client.query<Row>(`INSERT INTO certificates (serial, issuer, kind, device_id, subject_name,
        fingerprint_sha256, public_key_sha256, not_before, not_after)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])
      RETURNING ${CERT_COLUMNS}`,
    [col('serial'), col('issuer'), col('kind'), col('device_id'), col('subject_name'), col('fingerprint_sha256'),
      col('public_key_sha256'), col('not_before'), col('not_after')])
    const bySerial = new Map(rows.map((r) => [r.serial, fromCertRow(r)]))
    for (const c of batch) out.push(bySerial.get(c.serial)!)
  }
  return out
}

/** Revoke every active certificate of a device (deprovisioning); returns the serials. */
export async function revokeDeviceCertificates(client: PoolClient, deviceId: string, reason: RevocationReason): Promise<string[]> {
  const {rows} = await client.query<{serial: string}>(`UPDATE certificates SET status = 'revoked', revoked_at = now(),
      revocation_reason = $2 WHERE device_id = $1 AND status = 'active' RETURNING serial`, [deviceId, reason])
  return rows.map((r) => r.serial)
}

/** The next CRL number for a CA, strictly increasing even across concurrent `certs crl` runs. */
export async function nextCrlNumber(client: PoolClient, ca: string): Promise<number> {
  const {rows} = await client.query<{number: string}>(`INSERT INTO crl_numbers (ca, number) VALUES ($1, 1)
      ON CONFLICT (ca) DO UPDATE SET number = crl_numbers.number + 1 RETURNING number`, [ca])
  return Number(rows[0]!.number)
}
