import {createHmac, timingSafeEqual} from 'node:crypto'

/**
 * Expiring download URLs, like S3 presigned URLs: HMAC-SHA256 over the path and the expiry, so the
 * artifact server needs no session and a leaked URL stops working at `exp`.
 */
export function signPath(secret: Buffer, path: string, expiresAtSeconds: number): string {
  const sig = createHmac('sha256', secret).update(`${path}\n${expiresAtSeconds}`).digest('base64url')
  return `${path}?exp=${expiresAtSeconds}&sig=${sig}`
}

export type UrlCheck = {ok: true} | {ok: false; status: 403; reason: 'missing-signature' | 'bad-signature' | 'expired'}

export function checkSignedPath(secret: Buffer, path: string, query: URLSearchParams, nowSeconds = Math.floor(Date.now() / 1000)): UrlCheck {
  const exp = Number(query.get('exp'))
  const sig = query.get('sig')
  if (!sig || !Number.isInteger(exp)) return {ok: false, status: 403, reason: 'missing-signature'}
  const expected = Buffer.from(createHmac('sha256', secret).update(`${path}\n${exp}`).digest('base64url'))
  const given = Buffer.from(sig)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return {ok: false, status: 403, reason: 'bad-signature'}
  if (exp < nowSeconds) return {ok: false, status: 403, reason: 'expired'}
  return {ok: true}
}

/** RFC 9110 §14.1.2 byte ranges: one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`); several are refused. */
export function parseRange(header: string | undefined, size: number): {start: number; end: number} | 'unsatisfiable' | undefined {
  if (!header) return undefined
  const match = /^bytes=(\d*)-(\d*)$/i.exec(header.trim())
  if (!match || (match[1] === '' && match[2] === '')) return 'unsatisfiable'
  let start: number
  let end: number
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return {start, end}
}
