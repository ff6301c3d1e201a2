import {webcrypto} from 'node:crypto'

type X509Module = typeof import('@peculiar/x509')
let loaded: Promise<X509Module> | undefined

/**
 * @peculiar/x509 builds certificates, CSRs and CRLs (node-forge has no EC keys in X.509). It is
 * loaded lazily, after reflect-metadata (its ASN.1 schema decorators need it), with Node's own
 * WebCrypto as the provider. Verification never relies on it: see verify.ts.
 */
export function x509(): Promise<X509Module> {
  loaded ??= (async () => {
    await import('reflect-metadata')
    const mod = await import('@peculiar/x509')
    mod.cryptoProvider.set(webcrypto as unknown as Crypto)
    return mod
  })()
  return loaded
}

export const subtle = webcrypto.subtle
