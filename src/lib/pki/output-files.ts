import {mkdir, rename, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {IssuedCertificate} from './issue.js'

/** device.key (0600, only when iotctl generated it), device.crt, chain.pem (intermediate + root). */
export async function writeIssued(dir: string, issued: IssuedCertificate, base = 'device'): Promise<string[]> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  const written: string[] = []
  if (issued.private_key) {
    // A new 0600 file renamed over the old one: an existing key file never holds the new key
    // under a looser mode, not even for a moment.
    const tmp = join(dir, `.${base}.key.${process.pid}.tmp`)
    await writeFile(tmp, issued.private_key, {mode: 0o600})
    await rename(tmp, join(dir, `${base}.key`))
    written.push(join(dir, `${base}.key`))
  }
  await writeFile(join(dir, `${base}.crt`), issued.certificate, {mode: 0o644})
  await writeFile(join(dir, 'chain.pem'), issued.chain, {mode: 0o644})
  written.push(join(dir, `${base}.crt`), join(dir, 'chain.pem'))
  return written
}
