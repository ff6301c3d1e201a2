import type {IncomingMessage, ServerResponse} from 'node:http'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import type {ArtifactStore} from './artifacts.js'
import {checkSignedPath, parseRange} from './signed-url.js'

export interface ArtifactServerOptions {
  store: ArtifactStore
  secret: Buffer
  /** The CA directory: the server certificate (signed by the service CA) and its encrypted key. */
  caDir: string
  passphrase: string
  host?: string
  port: number
  log?: (line: string) => void
}

export interface RunningArtifactServer {
  port: number
  /** https://host:port, the base of every download URL. */
  baseUrl: string
  close(): Promise<void>
}

/**
 * Firmware downloads over HTTPS: GET /artifacts/sha256/{hex}?exp=…&sig=… with Range support
 * (206 Partial Content, 416 for a range outside the file), so a device resumes where it stopped.
 * No client certificate: the signed URL is the authorisation, as with S3 presigned URLs.
 */
export async function startArtifactServer(options: ArtifactServerOptions): Promise<RunningArtifactServer> {
  const https = await import('node:https')
  const read = (name: string) => readFile(join(options.caDir, name), 'utf8')
  const server = https.createServer({
    cert: (await read('server.crt')) + (await read('service-ca.crt')),
    key: await read('server.key'), passphrase: options.passphrase, minVersion: 'TLSv1.3',
  }, (request, response) => {
    serve(options, request, response).catch((error: Error) => {
      options.log?.(`artifact request failed: ${error.message}`)
      if (!response.headersSent) response.writeHead(500).end()
      else response.destroy()
    })
  })
  server.on('tlsClientError', () => undefined) // a probe or a dropped handshake is not an error of ours
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => resolve())
  })
  const port = (server.address() as {port: number}).port
  options.log?.(`firmware artifacts over HTTPS on ${host}:${port}`)
  return {
    port,
    baseUrl: `https://${host}:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

async function serve(options: ArtifactServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'https://artifacts')
  const match = /^\/artifacts\/(sha256\/[0-9a-f]{64})$/.exec(url.pathname)
  if (request.method !== 'GET' && request.method !== 'HEAD') return void response.writeHead(405, {allow: 'GET, HEAD'}).end()
  if (!match) return void response.writeHead(404).end()
  const check = checkSignedPath(options.secret, url.pathname, url.searchParams)
  if (!check.ok) {
    options.log?.(`artifact ${match[1]} refused: ${check.reason}`)
    return void response.writeHead(check.status, {'content-type': 'text/plain'}).end(`${check.reason}\n`)
  }
  const key = match[1]!
  const size = await options.store.size(key)
  if (size === undefined) return void response.writeHead(404).end()
  const range = parseRange(request.headers.range, size)
  if (range === 'unsatisfiable') return void response.writeHead(416, {'content-range': `bytes */${size}`}).end()
  const headers = {'accept-ranges': 'bytes', 'content-type': 'application/octet-stream', etag: `"${key.slice(7)}"`}
  if (!range) {
    response.writeHead(200, {...headers, 'content-length': size})
  } else {
    response.writeHead(206, {...headers, 'content-length': range.end - range.start + 1, 'content-range': `bytes ${range.start}-${range.end}/${size}`})
  }
  if (request.method === 'HEAD' || size === 0) return void response.end()
  const stream = options.store.read(key, range)
  stream.on('error', () => response.destroy())
  stream.pipe(response)
}
