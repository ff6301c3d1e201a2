import {X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {invalidInput, notFound} from '../core/errors.js'
import type {TlsIdentity} from './client.js'

/**
 * A service identity from `certs issue --operator NAME --out DIR`: DIR/operator.crt, operator.key and
 * chain.pem (service CA + root, which also verifies the broker's server certificate).
 */
export async function readIdentityDir(dir: string): Promise<TlsIdentity> {
  const read = (name: string) => readFile(join(dir, name), 'utf8').catch(() => {
    throw notFound('E_IDENTITY', `cannot read ${join(dir, name)}`, {hint: 'create the files with `iotctl certs issue --operator NAME --out DIR`'})
  })
  const [cert, key, chain] = await Promise.all([read('operator.crt'), read('operator.key'), read('chain.pem')])
  return {cert: cert + chain, key, ca: chain}
}

/** The CN of a PEM certificate: a service's default client id. */
export function commonName(certPem: string): string {
  try {
    const subject = new X509Certificate(certPem).subject
    const cn = /^CN=(.+)$/m.exec(subject)?.[1]
    if (cn) return cn
  } catch {
    // reported below
  }
  throw invalidInput('E_CERTIFICATE', 'the service certificate has no readable common name', {hint: 'pass the PEM certificate iotctl issued (`certs issue --operator`)'})
}

