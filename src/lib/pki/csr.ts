import {invalidInput} from '../core/errors.js'
import {publicKeyFingerprint, publicKeyObject} from './keys.js'
import {x509} from './x509.js'

export interface VerifiedCsr {
  spkiDer: Buffer
  publicKeySha256: string
}

/**
 * Accept a device-generated CSR only if its self-signature verifies (proof of possession,
 * RFC 2986 §3), its subject CN is exactly the device id, and its key is EC P-256/P-384 or RSA ≥ 2048.
 */
export async function verifyCsr(text: string, expectedCn: string): Promise<VerifiedCsr> {
  const x = await x509()
  let csr: InstanceType<typeof x.Pkcs10CertificateRequest>
  try {
    csr = new x.Pkcs10CertificateRequest(text.includes('-----BEGIN') ? text.trim() : Buffer.from(text, 'binary'))
  } catch (error) {
    throw invalidInput('E_CSR_PARSE', `the CSR cannot be parsed: ${(error as Error).message}`, {hint: 'pass a PKCS#10 request in PEM or DER (openssl req -new …)'})
  }
  if (!(await csr.verify().catch(() => false))) {
    throw invalidInput('E_CSR_SIGNATURE', 'the CSR signature does not verify', {hint: 'the CSR must be signed with the private key whose public key it carries'})
  }
  const cns = csr.subjectName.getField('CN')
  if (cns.length !== 1 || cns[0] !== expectedCn) {
    throw invalidInput('E_CSR_SUBJECT', `the CSR's common name is ${JSON.stringify(cns.join(','))}, not the device id ${JSON.stringify(expectedCn)}`, {
      hint: `create the CSR with -subj "/CN=${expectedCn}"`,
    })
  }
  const spki = csr.publicKey.rawData
  const key = publicKeyObject(Buffer.from(spki))
  const details = key.asymmetricKeyDetails
  const ok = key.asymmetricKeyType === 'rsa' ? (details?.modulusLength ?? 0) >= 2048
    : key.asymmetricKeyType === 'ec' && ['prime256v1', 'secp384r1'].includes(details?.namedCurve ?? '')
  if (!ok) {
    throw invalidInput('E_CSR_KEY', `the CSR's key is ${key.asymmetricKeyType} ${details?.namedCurve ?? details?.modulusLength ?? ''}: too weak or unsupported`, {
      hint: 'use EC P-256 (recommended), EC P-384, or RSA with at least 2048 bits',
    })
  }
  return {spkiDer: Buffer.from(spki), publicKeySha256: publicKeyFingerprint(Buffer.from(spki))}
}
