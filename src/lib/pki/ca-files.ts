import {X509Certificate, createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {notFound} from '../core/errors.js'

/** The CA directory's files; keys are encrypted PKCS#8 PEM with mode 0600. */
export const CA_ROLES = ['root', 'device-ca', 'service-ca', 'server'] as const
export type CaRole = (typeof CA_ROLES)[number]

export const caFile = (dir: string, role: CaRole, ext: 'crt' | 'key') => join(dir, `${role}.${ext}`)

export interface CertInfo {
  role: string
  subject: string
  issuer: string
  serial: string
  sha256: string
  not_before: string
  not_after: string
  key: string
}

export function fingerprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex')
}

export function describe(role: string, cert: X509Certificate): CertInfo {
  const key = cert.publicKey.asymmetricKeyDetails
  return {
    role,
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    serial: cert.serialNumber.toLowerCase(),
    sha256: fingerprint(cert),
    not_before: new Date(cert.validFrom).toISOString(),
    not_after: new Date(cert.validTo).toISOString(),
    key: cert.publicKey.asymmetricKeyType === 'ec' ? `ec ${key?.namedCurve}` : `${cert.publicKey.asymmetricKeyType} ${key?.modulusLength}`,
  }
}

export async function readCert(dir: string, role: CaRole): Promise<X509Certificate> {
  try {
    return new X509Certificate(await readFile(caFile(dir, role, 'crt')))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw notFound('E_CA_NOT_INITIALISED', `no CA in ${dir}`, {hint: 'create one with `iotctl ca init`'})
    }
    throw error
  }
}

/** `ca show`: subjects, fingerprints and expiry, without the passphrase. */
export async function showCa(dir: string): Promise<CertInfo[]> {
  const infos: CertInfo[] = []
  for (const role of CA_ROLES) infos.push(describe(role, await readCert(dir, role)))
  return infos
}
