/** Reading environment variables: each one checked, so a typo stops the start with its name. */

/** Fastify's `trustProxy`, in the forms that do not trust every hop a client may have written. */
export type TrustProxy = false | number | string[]

export const env = (name: string): string | undefined => {
  const v = process.env[name]
  return v === undefined || v.trim() === '' ? undefined : v.trim()
}

/**
 * TRUST_PROXY: a hop count, or addresses / CIDR ranges of the proxies. `true` is read as one hop:
 * trusting every hop would let any client name its own address in `X-Forwarded-For` (and so
 * escape the rate limit and the admin sign-in limit).
 */
export const parseTrustProxy = (raw: string | undefined): TrustProxy => {
  if (raw === undefined) return false
  const v = raw.trim().toLowerCase()
  if (v === '' || v === 'false' || v === '0' || v === 'no' || v === 'off') return false
  if (v === 'true' || v === 'yes' || v === 'on') return 1
  if (/^\d+$/.test(v)) {
    const hops = Number(v)
    if (hops > 100) throw new Error(`TRUST_PROXY must be a hop count up to 100, or proxy addresses: ${raw}`)
    return hops
  }
  const addresses = v.split(/[\s,]+/).filter(Boolean)
  const address = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+:[0-9a-f:.]*)(\/\d{1,3})?$|^(loopback|linklocal|uniquelocal)$/
  for (const a of addresses) {
    if (!address.test(a)) throw new Error(`TRUST_PROXY: not a hop count, an address or a CIDR range: ${a}`)
  }
  return addresses
}

export const trustProxyEnv = (): TrustProxy => parseTrustProxy(env('TRUST_PROXY'))

export const intEnv = (name: string, fallback: number, min: number, max: number): number => {
  const raw = env(name)
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer between ${min} and ${max}, got "${raw}"`)
  }
  return n
}

/** A decimal number (e.g. 0.05 hours, to see a periodic job run within minutes on a staging box). */
export const numberEnv = (name: string, fallback: number, min: number, max: number): number => {
  const raw = env(name)
  if (raw === undefined) return fallback
  const n = /^\d+(\.\d+)?$|^\.\d+$/.test(raw) ? Number(raw) : Number.NaN
  if (!(n >= min && n <= max)) throw new Error(`${name} must be a number between ${min} and ${max}, got "${raw}"`)
  return n
}

export const boolEnv = (name: string, fallback: boolean): boolean => {
  const raw = env(name)
  if (raw === undefined) return fallback
  if (/^(1|true|yes|on)$/i.test(raw)) return true
  if (/^(0|false|no|off)$/i.test(raw)) return false
  throw new Error(`${name} must be true or false, got "${raw}"`)
}

export const schemaEnv = (): string => {
  const schema = env('DATABASE_SCHEMA') ?? 'public'
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`DATABASE_SCHEMA must be a plain lower-case identifier, got "${schema}"`)
  return schema
}

export const moderatorDidsEnv = (): string[] => {
  const dids = (env('MODERATOR_DIDS') ?? '').split(/[\s,]+/).filter((d) => d !== '')
  for (const did of dids) {
    if (!/^did:(plc|web):[a-zA-Z0-9._:%-]+$/.test(did)) throw new Error(`MODERATOR_DIDS must list did:plc or did:web DIDs, got "${did}"`)
  }
  return dids
}

export const webhookUrlsEnv = (): string[] => {
  const urls = (env('WEBHOOK_URLS') ?? '').split(/[\s,]+/).filter((u) => u !== '')
  for (const u of urls) {
    let url: URL
    try {
      url = new URL(u)
    } catch {
      throw new Error(`WEBHOOK_URLS must list http(s) URLs, got "${u}"`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`WEBHOOK_URLS must list http(s) URLs, got "${u}"`)
  }
  const secret = env('WEBHOOK_SECRET')
  // Unsigned deliveries would let anyone who finds the receiver's URL forge notifications.
  if (urls.length > 0 && (secret === undefined || secret.length < 16)) {
    throw new Error('WEBHOOK_URLS needs WEBHOOK_SECRET (at least 16 characters) to sign the deliveries')
  }
  return urls
}

