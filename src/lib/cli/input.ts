import {readFile, stat} from 'node:fs/promises'
import {invalidInput, notFound} from '../core/errors.js'

/** Limits are explicit: an input file larger than this is refused before it is read. */
export const MAX_INPUT_BYTES = 512 * 1024 * 1024

/**
 * Read a file argument, `-` meaning stdin. oclif's allowStdin gives up after 10 ms, so stdin
 * is read here until EOF.
 */
export async function readInput(path: string): Promise<string> {
  return (await readInputBytes(path)).toString('utf8')
}

/** The bytes of a file argument or stdin, for binary inputs such as a DER CSR. */
export async function readInputBytes(path: string): Promise<Buffer> {
  if (path === '-') {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length
      if (size > MAX_INPUT_BYTES) throw invalidInput('E_INPUT_SIZE', `stdin exceeds ${MAX_INPUT_BYTES} bytes`, {hint: 'split the input into smaller files'})
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks)
  }
  try {
    const info = await stat(path)
    if (info.size > MAX_INPUT_BYTES) throw invalidInput('E_INPUT_SIZE', `${path} is ${info.size} bytes; the limit is ${MAX_INPUT_BYTES}`, {hint: 'split the input into smaller files'})
    return await readFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw notFound('E_FILE_NOT_FOUND', `file ${JSON.stringify(path)} does not exist`, {hint: 'check the path, or pass - to read stdin'})
    if (code === 'EISDIR') throw invalidInput('E_FILE_IS_DIR', `${path} is a directory; pass a file`, {hint: 'name a file inside it, or - for stdin'})
    throw error
  }
}

/**
 * Stdin up to `limit` bytes plus one: enough for the caller to see that it is too large, without
 * holding an arbitrarily large input in memory.
 */
export async function readStdinUpTo(limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer)
    size += (chunk as Buffer).length
    if (size > limit) break
  }
  return Buffer.concat(chunks)
}
