import type { IdResolver } from '@atproto/identity'
import { verifyJwt } from '@atproto/xrpc-server'
import { stripFragment } from '../atproto/identity.ts'
import { Lru } from '../lib/lru.ts'
import { authRequired, XrpcError } from './errors.ts'

export interface ServiceAuth {
  /** The caller's DID, proven by a service-auth JWT for `lxm` addressed to this service. */
  verify(authorization: string | undefined, lxm: string): Promise<string>
  /** The same for a bare token, with its expiry (seconds since the epoch): a stream lasts until then. */
  verifyToken(token: string, lxm: string): Promise<{ did: string; exp: number }>
}

const SUPPORTED_ISSUER = /^did:(plc|web):/

const MAX_CACHED_TOKENS = 10_000

/** A DID's document is fetched afresh (for a key rotated since it was cached) at most this often. */
export const KEY_REFRESH_INTERVAL_MS = 60_000
const MAX_REFRESHED_DIDS = 10_000

export const createServiceAuth = (
  serviceDid: string,
  idResolver: IdResolver,
  opts: { refreshIntervalMs?: number; now?: () => number } = {},
): ServiceAuth => {
  const refreshIntervalMs = opts.refreshIntervalMs ?? KEY_REFRESH_INTERVAL_MS
  const now = opts.now ?? Date.now
  // verifyJwt asks for a fresh key whenever a signature does not verify, so a caller sending
  // badly signed tokens could make us fetch a DID document per request (hammering the PLC, or a
  // did:web host we would then be attacking). A refresh per DID per interval is enough to follow
  // a key rotation; within it the cached document answers. Bounded: an LRU of DIDs.
  const refreshedAt = new Lru<string, number>(MAX_REFRESHED_DIDS)
  // The frontend reuses a token until it expires: a token checked once (signature, aud, lxm) is
  // remembered until its exp, so each reuse costs a map lookup rather than a signature check.
  const verified = new Map<string, { did: string; exp: number }>()
  const getSigningKey = async (iss: string, forceRefresh: boolean): Promise<string> => {
    const did = stripFragment(iss)
    if (!SUPPORTED_ISSUER.test(did)) throw authRequired('only did:plc and did:web issuers are accepted')
    let fresh = false
    if (forceRefresh) {
      const last = refreshedAt.peek(did)
      if (last === undefined || now() - last >= refreshIntervalMs) {
        refreshedAt.set(did, now())
        fresh = true
      }
    }
    try {
      return await idResolver.did.resolveAtprotoKey(did, fresh)
    } catch (err) {
      throw authRequired(`could not resolve the issuer's signing key: ${(err as Error).message}`)
    }
  }
  const verifyToken = async (token: string, lxm: string): Promise<{ did: string; exp: number }> => {
    const cacheKey = `${lxm} ${token}`
    const known = verified.get(cacheKey)
    if (known) {
      if (Date.now() / 1000 <= known.exp) return known
      verified.delete(cacheKey)
      throw authRequired('jwt expired')
    }
    let payload: { iss: string; exp: number }
    try {
      payload = await verifyJwt(token, serviceDid, lxm, getSigningKey as Parameters<typeof verifyJwt>[3])
    } catch (err) {
      if (err instanceof XrpcError) throw err
      throw authRequired(err instanceof Error ? err.message : 'invalid token')
    }
    const did = stripFragment(payload.iss)
    if (verified.size >= MAX_CACHED_TOKENS) verified.clear()
    const entry = { did, exp: payload.exp }
    verified.set(cacheKey, entry)
    return entry
  }
  return {
    async verify(authorization, lxm) {
      if (!authorization) throw authRequired('a service-auth bearer token is required')
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
      if (!match?.[1]) throw authRequired('Authorization must be "Bearer <token>"')
      return (await verifyToken(match[1], lxm)).did
    },
    verifyToken,
  }
}
