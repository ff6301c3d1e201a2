/** A URL safe to print: the password (and any token-like query value) replaced by ***. */
export function maskUrl(raw: string): string {
  try {
    const url = new URL(raw)
    if (url.password) url.password = '***'
    for (const key of [...url.searchParams.keys()]) {
      if (/pass|token|secret|key/i.test(key)) url.searchParams.set(key, '***')
    }
    return url.toString()
  } catch {
    // Not a URL we can parse (a libpq key=value string): hide anything after password=.
    return raw.replace(/(password\s*=\s*)\S+/gi, '$1***')
  }
}
