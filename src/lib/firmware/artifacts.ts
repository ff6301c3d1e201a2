import {createHash, randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdir, readFile, rename, rm, stat, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pipeline} from 'node:stream/promises'
import {notFound} from '../core/errors.js'

/**
 * Where firmware files live. Content-addressed by SHA-256, so storing the same file twice is
 * harmless and a key never points at other bytes. The file store serves the dev stack and a shared
 * volume; an S3-compatible store implements the same four methods.
 */
export interface ArtifactStore {
  /** Copy a file in; returns its key, SHA-256 and size. */
  put(file: string): Promise<{key: string; sha256: string; size: number}>
  size(key: string): Promise<number | undefined>
  read(key: string, range?: {start: number; end: number}): NodeJS.ReadableStream
  remove(key: string): Promise<void>
}

export const artifactKey = (sha256: string) => `sha256/${sha256}`

export async function hashFile(file: string): Promise<{sha256: string; size: number}> {
  const hash = createHash('sha256')
  let size = 0
  const stream = createReadStream(file)
  stream.on('data', (chunk) => {
    size += chunk.length
  })
  await pipeline(stream, hash)
  return {sha256: hash.digest('hex'), size}
}

export class FileArtifactStore implements ArtifactStore {
  constructor(readonly dir: string) {}

  private path(key: string): string {
    if (!/^sha256\/[0-9a-f]{64}$/.test(key)) throw notFound('E_ARTIFACT_KEY', `no artifact ${key}`)
    return join(this.dir, key)
  }

  async put(file: string): Promise<{key: string; sha256: string; size: number}> {
    await mkdir(join(this.dir, 'sha256'), {recursive: true, mode: 0o700})
    const temp = join(this.dir, `.upload-${randomBytes(6).toString('hex')}`)
    const hash = createHash('sha256')
    let size = 0
    const input = createReadStream(file)
    input.on('data', (chunk) => {
      size += chunk.length
      hash.update(chunk)
    })
    try {
      await pipeline(input, createWriteStream(temp, {mode: 0o600}))
      const sha256 = hash.digest('hex')
      await rename(temp, this.path(artifactKey(sha256)))
      return {key: artifactKey(sha256), sha256, size}
    } catch (error) {
      await rm(temp, {force: true})
      throw error
    }
  }

  async size(key: string): Promise<number | undefined> {
    return stat(this.path(key)).then((s) => s.size, () => undefined)
  }

  read(key: string, range?: {start: number; end: number}): NodeJS.ReadableStream {
    return createReadStream(this.path(key), range)
  }

  async remove(key: string): Promise<void> {
    await rm(this.path(key), {force: true})
  }
}

/** The secret that signs download URLs, shared by the controller (signs) and the artifact server (checks). */
export async function urlSigningSecret(dir: string): Promise<Buffer> {
  const file = join(dir, '.url-signing-key')
  const existing = await readFile(file).catch(() => undefined)
  if (existing && existing.length >= 32) return existing
  await mkdir(dir, {recursive: true, mode: 0o700})
  const secret = randomBytes(32)
  await writeFile(file, secret, {mode: 0o600, flag: 'wx'}).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error
  })
  return readFile(file)
}
