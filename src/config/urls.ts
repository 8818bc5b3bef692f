/** The URL forms an operator may paste for a relay or a Jetstream, and what each one means. */

/** Accepts ws://, wss://, http:// and https:// base URLs; the stream is always a WebSocket. */
export const normaliseRelayUrl = (raw: string): string => {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new Error(`RELAY_URL is not a URL: "${raw}"`)
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[url.protocol]
  if (!scheme) throw new Error(`RELAY_URL must be ws://, wss://, http:// or https://, got "${raw}"`)
  url.protocol = scheme
  url.search = ''
  url.hash = ''
  return url.toString().replace(/\/+$/, '')
}

/**
 * A Jetstream instance's base URL (ws:// or wss://), from what an operator may paste: with or
 * without `/subscribe` or the v2 method path, a query string, http(s) for ws(s).
 */
export const normaliseJetstreamUrl = (raw: string): string => {
  const url = new URL(normaliseRelayUrl(raw))
  url.pathname = url.pathname.replace(/\/(subscribe|xrpc\/network\.bsky\.jetstream\.subscribeEvents)\/?$/, '')
  return url.toString().replace(/\/+$/, '')
}

/** A RELAY_URL that is a Jetstream (by its `/subscribe` path or a `jetstreamN.` host), not a relay. */
export const looksLikeJetstream = (raw: string): boolean => {
  try {
    const url = new URL(raw)
    return /\/subscribe\/?$/.test(url.pathname) || /^jetstream\d*\./.test(url.hostname)
  } catch {
    return false
  }
}

/** The http(s) form of a relay URL, for its XRPC queries. */
export const httpBase = (raw: string): string => {
  const url = new URL(normaliseRelayUrl(raw))
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  return url.toString().replace(/\/+$/, '')
}

export const isPrivateHost = (raw: string): boolean => {
  const host = new URL(raw).hostname
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\./.test(host) ||
    /^10\./.test(host) ||
    /^192\.168\./.test(host) ||
    /^172\.(1[6-9]|2\d|3[01])\./.test(host) ||
    host === '[::1]'
  )
}

