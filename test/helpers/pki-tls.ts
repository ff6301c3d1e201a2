import {readFile} from 'node:fs/promises'
import type {AddressInfo} from 'node:net'
import {join} from 'node:path'
import tls from 'node:tls'

/**
 * Node's `crl` option reads ONE CRL from each string or Buffer (SecureContext::AddCRL calls
 * PEM_read_bio_X509_CRL once): crl-chain.pem must be passed as an array of its PEM blocks.
 */
export function splitPemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----\n?/g) ?? []
}

/** What the server saw for one client: Node's verdict on the client certificate. */
export interface ServerVerdict {
  authorized: boolean
  authorizationError: string | null
  /** CN of the client certificate, when one was sent. */
  peerCn?: string
}

export interface MtlsServer {
  port: number
  /** The verdict for the connection whose client-side local port is `clientPort`. */
  verdictFor(clientPort: number, timeoutMs?: number): Promise<ServerVerdict>
  close(): Promise<void>
}

/**
 * The broker's mutual-TLS front end as DESIGN.md §4 describes it, built from the CA directory:
 * server.crt + service-ca.crt as the chain, the encrypted server.key (CA passphrase), the device
 * CA + root as client trust anchors, the published CRLs, TLS 1.3 minimum. It never rejects a
 * handshake itself (rejectUnauthorized: false) so each test can read Node's verdict.
 */
export async function startMtlsServer(options: {caDir: string; passphrase: string; crl: string | string[]}): Promise<MtlsServer> {
  const f = (name: string) => readFile(join(options.caDir, name), 'utf8')
  const server = tls.createServer({
    cert: (await f('server.crt')) + (await f('service-ca.crt')),
    key: await f('server.key'),
    passphrase: options.passphrase,
    ca: (await f('device-ca.crt')) + (await f('root.crt')),
    crl: options.crl,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
  })
  const verdicts = new Map<number, ServerVerdict>()
  const waiters = new Map<number, (v: ServerVerdict) => void>()
  server.on('secureConnection', (socket) => {
    const peer = socket.getPeerCertificate()
    const verdict: ServerVerdict = {
      authorized: socket.authorized,
      authorizationError: socket.authorizationError === undefined || socket.authorizationError === null
        ? null : String((socket.authorizationError as unknown as {code?: string}).code ?? socket.authorizationError),
      peerCn: peer && typeof peer === 'object' && peer.subject ? (peer.subject.CN as string | undefined) : undefined,
    }
    const port = socket.remotePort!
    const waiter = waiters.get(port)
    if (waiter) {
      waiters.delete(port)
      waiter(verdict)
    } else {
      verdicts.set(port, verdict)
    }
    socket.on('error', () => undefined)
    socket.end('bye')
  })
  // Handshakes the client aborts (it rejected our certificate) end here; that is expected.
  server.on('tlsClientError', () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  return {
    port,
    verdictFor(clientPort, timeoutMs = 5000) {
      // Each verdict is handed out once: a later connection may reuse the same ephemeral port.
      const known = verdicts.get(clientPort)
      if (known) {
        verdicts.delete(clientPort)
        return Promise.resolve(known)
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no secureConnection from client port ${clientPort}`)), timeoutMs)
        waiters.set(clientPort, (v) => {
          clearTimeout(timer)
          resolve(v)
        })
      })
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

export interface ClientOutcome {
  /** The client completed the handshake (it accepted the broker's certificate). */
  connected: boolean
  /** The client's local port, to look up the server's verdict. */
  localPort?: number
  /** Error code when the client refused the server (or the connection failed). */
  errorCode?: string
  protocol?: string | null
}

/** Connect like a device: client certificate (+ chain), trusting `ca` for the broker, SNI localhost. */
export function connectDevice(port: number, options: {cert?: string; key?: string; ca: string; servername?: string}): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    let localPort: number | undefined
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: options.servername ?? 'localhost',
      cert: options.cert, key: options.key, ca: options.ca, minVersion: 'TLSv1.3',
    })
    socket.on('connect', () => (localPort = socket.localPort))
    socket.once('secureConnect', () => {
      const protocol = socket.getProtocol()
      localPort = socket.localPort
      // Wait for the server's answer: in TLS 1.3 it checks our certificate after our Finished.
      socket.on('data', () => undefined)
      socket.once('close', () => resolve({connected: true, localPort, protocol}))
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (socket.listenerCount('secureConnect') === 0) return // after secureConnect: close resolves
      resolve({connected: false, localPort, errorCode: error.code})
      socket.destroy()
    })
  })
}
