import {mkdir, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {PoolClient} from '../db/pool.js'
import type {SigningCa} from './ca.js'
import {nextCrlNumber, REVOCATION_REASONS} from './store.js'
import {x509} from './x509.js'

/** CRLs are short-lived on purpose: a relying party that cannot refresh fails closed after this. */
export const CRL_VALIDITY_DAYS = 7

export interface CrlInfo {
  ca: string
  number: number
  entries: number
  this_update: string
  next_update: string
  path: string
}

interface RevokedRow {
  serial: string
  revoked_at: Date
  revocation_reason: string | null
}

async function revokedBy(client: PoolClient, ca: SigningCa): Promise<RevokedRow[]> {
  // The root CA only signs the two intermediates, which iotctl never revokes on its own: its CRL
  // is empty but must exist, because Node's TLS checks a CRL for every CA in the chain.
  if (ca.role === 'root') return []
  const {rows} = await client.query<RevokedRow>(
    "SELECT serial, revoked_at, revocation_reason FROM certificates WHERE issuer = $1 AND status = 'revoked' ORDER BY serial", [ca.role])
  return rows
}

/** Sign one CRL (RFC 5280 §5) with an increasing CRL number and the issuer's key identifier. */
export async function buildCrl(client: PoolClient, ca: SigningCa, now = new Date()): Promise<{pem: string; number: number; entries: number; nextUpdate: Date}> {
  const x = await x509()
  const {AsnConvert} = await import('@peculiar/asn1-schema')
  const {CRLNumber, id_ce_cRLNumber} = await import('@peculiar/asn1-x509')
  const rows = await revokedBy(client, ca)
  const number = await nextCrlNumber(client, ca.role)
  const nextUpdate = new Date(now.getTime() + CRL_VALIDITY_DAYS * 86_400_000)
  const crl = await x.X509CrlGenerator.create({
    issuer: ca.name,
    thisUpdate: now,
    nextUpdate,
    signingKey: ca.signingKey,
    signingAlgorithm: ca.signingAlgorithm,
    extensions: [
      await x.AuthorityKeyIdentifierExtension.create(ca.publicKey),
      new x.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(number))),
    ],
    entries: rows.map((r) => ({
      serialNumber: r.serial,
      revocationDate: r.revoked_at,
      reason: x.X509CrlReason[(r.revocation_reason ?? 'unspecified') as (typeof REVOCATION_REASONS)[number]],
    })),
  })
  // OpenSSL, Node and Mosquitto read the RFC 7468 label "X509 CRL", not the library's "CRL".
  return {pem: x.PemConverter.encode(crl.rawData, 'X509 CRL').trimEnd() + '\n', number, entries: rows.length, nextUpdate}
}

/** Write CRLs for every CA, each atomically, plus crl-chain.pem (all of them) for Node's `tls`. */
export async function writeCrls(client: PoolClient, cas: SigningCa[], outDir: string): Promise<CrlInfo[]> {
  await mkdir(outDir, {recursive: true, mode: 0o755})
  const now = new Date()
  const infos: CrlInfo[] = []
  const pems: string[] = []
  for (const ca of cas) {
    const crl = await buildCrl(client, ca, now)
    const path = join(outDir, `${ca.role}.crl.pem`)
    await atomicWrite(path, crl.pem)
    pems.push(crl.pem)
    infos.push({ca: ca.role, number: crl.number, entries: crl.entries, this_update: now.toISOString(), next_update: crl.nextUpdate.toISOString(), path})
  }
  await atomicWrite(join(outDir, 'crl-chain.pem'), pems.join(''))
  return infos
}

async function atomicWrite(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text, {mode: 0o644})
  await rename(tmp, path)
}
