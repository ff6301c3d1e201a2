import {createHash, type Hash} from 'node:crypto'
import {Agent, request} from 'node:https'
import type {IncomingMessage} from 'node:http'
import {parseContentRange} from './ota-policy.js'

export interface DownloadOptions {
  url: string
  /** PEM of the roots trusted for the artifact server (the stack's root CA). */
  ca: string
  /** The size the assignment promises: a server that announces another total is refused at once. */
  size: number
  chunkBytes: number
  /** Consecutive failed requests tolerated (progress resets the count), with doubling backoff. */
  retries: number
  backoffMs: number
  timeoutMs: number
  signal: AbortSignal
  onBytes: (received: number) => void
  log: (line: string) => void
}

export type DownloadResult = {ok: true; sha256: string; bytes: number; head: Buffer} | {ok: false; reason: 'download-failed' | 'size-mismatch'; detail: string}

/** A refusal from the server that no retry can fix (403 expired URL, 404, 416). */
class FatalResponse extends Error {}

class SizeMismatch extends Error {}

const sleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const timer = setTimeout(resolve, ms)
  signal.addEventListener('abort', () => {
    clearTimeout(timer)
    resolve()
  }, {once: true})
})

/**
 * Download an artifact in Range requests of `chunkBytes`, hashing as bytes arrive (nothing is
 * kept: a simulated slot holds only a version). Bytes of a chunk cut short are kept, and the next
 * request starts at the first byte not yet received, so an interrupted download resumes where it
 * stopped instead of starting over.
 */
const HEAD_BYTES = 64

export async function downloadArtifact(o: DownloadOptions): Promise<DownloadResult> {
  const agent = new Agent({keepAlive: true, maxSockets: 1, ca: o.ca})
  const state = {received: 0, hash: createHash('sha256'), head: Buffer.alloc(0)}
  let failures = 0
  try {
    if (o.size === 0) return await fetchEmpty(o, agent)
    while (state.received < o.size) {
      if (o.signal.aborted) return {ok: false, reason: 'download-failed', detail: 'stopped'}
      const before = state.received
      try {
        await fetchChunk(o, agent, state)
        failures = 0
      } catch (error) {
        if (error instanceof SizeMismatch) return {ok: false, reason: 'size-mismatch', detail: error.message}
        if (error instanceof FatalResponse) return {ok: false, reason: 'download-failed', detail: error.message}
        failures = state.received > before ? 1 : failures + 1
        if (failures > o.retries) return {ok: false, reason: 'download-failed', detail: `${(error as Error).message} (after ${o.retries} retries)`}
        o.log(`download interrupted at byte ${state.received} of ${o.size} (${(error as Error).message}); resuming with Range bytes=${state.received}- in ${o.backoffMs * 2 ** (failures - 1)} ms`)
        await sleep(o.backoffMs * 2 ** (failures - 1), o.signal)
      }
    }
    return {ok: true, sha256: state.hash.digest('hex'), bytes: state.received, head: state.head}
  } finally {
    agent.destroy()
  }
}

/** A zero-byte artifact: no range exists to ask for (416), so only check that the server's file is empty. */
async function fetchEmpty(o: DownloadOptions, agent: Agent): Promise<DownloadResult> {
  const response = await get(o, agent, undefined).catch((error: Error) => error)
  if (response instanceof Error) return {ok: false, reason: 'download-failed', detail: response.message}
  response.resume()
  if (response.statusCode !== 200) return {ok: false, reason: 'download-failed', detail: `HTTP ${response.statusCode}`}
  const length = Number(response.headers['content-length'])
  if (length !== 0) return {ok: false, reason: 'size-mismatch', detail: `the server has ${length} bytes, the assignment says 0`}
  return {ok: true, sha256: createHash('sha256').digest('hex'), bytes: 0, head: Buffer.alloc(0)}
}

/** One Range request from the first missing byte; appends what arrives, even when the body is cut short. */
async function fetchChunk(o: DownloadOptions, agent: Agent, state: {received: number; hash: Hash; head: Buffer}): Promise<void> {
  const start = state.received
  const end = Math.min(start + o.chunkBytes, o.size) - 1
  const response = await get(o, agent, `bytes=${start}-${end}`)
  if (response.statusCode !== 206) {
    response.resume()
    const status = response.statusCode ?? 0
    if (status === 416) throw new SizeMismatch(`the server refused bytes ${start}-${end} (${response.headers['content-range'] ?? 'no size'}); the assignment says ${o.size} bytes`)
    if (status >= 400 && status < 500) throw new FatalResponse(`HTTP ${status}`)
    throw new Error(`HTTP ${status}`)
  }
  const range = parseContentRange(response.headers['content-range'])
  if (!range || range.start !== start) {
    response.resume()
    throw new FatalResponse(`unexpected Content-Range ${JSON.stringify(response.headers['content-range'])} for bytes=${start}-${end}`)
  }
  if (range.total !== o.size) {
    response.resume()
    throw new SizeMismatch(`the server has ${range.total} bytes, the assignment says ${o.size}`)
  }
  await consume(response, (chunk) => {
    // The image's first bytes are kept: the simulated bootloader reads its header (ota.ts).
    if (state.head.length < HEAD_BYTES) state.head = Buffer.concat([state.head, chunk.subarray(0, HEAD_BYTES - state.head.length)])
    state.hash.update(chunk)
    state.received += chunk.length
    o.onBytes(state.received)
  })
  if (state.received !== end + 1) throw new Error(`connection closed after byte ${state.received} of ${start}-${end}`)
}

function get(o: DownloadOptions, agent: Agent, range: string | undefined): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(o.url, {agent, headers: range ? {range} : {}, timeout: o.timeoutMs, signal: o.signal}, resolve)
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** Read a body to its end or until the connection breaks; the caller compares what arrived with what was asked. */
function consume(response: IncomingMessage, onChunk: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve) => {
    response.on('data', onChunk)
    response.on('end', () => resolve())
    response.on('aborted', () => resolve())
    response.on('error', () => resolve())
    response.on('close', () => resolve())
  })
}
