import type { IdResolver } from '@atproto/identity'
import { verifyJwt } from '@atproto/xrpc-server'
import { stripFragment } from '../identity.ts'
import { authRequired, XrpcError } from './errors.ts'

export interface ServiceAuth {
  /** The caller's DID, proven by a service-auth JWT for `lxm` addressed to this service. */
  verify(authorization: string | undefined, lxm: string): Promise<string>
}

const SUPPORTED_ISSUER = /^did:(plc|web):/

export const createServiceAuth = (serviceDid: string, idResolver: IdResolver): ServiceAuth => {
  const getSigningKey = async (iss: string, forceRefresh: boolean): Promise<string> => {
    const did = stripFragment(iss)
    if (!SUPPORTED_ISSUER.test(did)) throw authRequired('only did:plc and did:web issuers are accepted')
    try {
      return await idResolver.did.resolveAtprotoKey(did, forceRefresh)
    } catch (err) {
      throw authRequired(`could not resolve the issuer's signing key: ${(err as Error).message}`)
    }
  }
  return {
    async verify(authorization, lxm) {
      if (!authorization) throw authRequired('a service-auth bearer token is required')
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
      if (!match?.[1]) throw authRequired('Authorization must be "Bearer <token>"')
      let payload: { iss: string }
      try {
        payload = await verifyJwt(match[1], serviceDid, lxm, getSigningKey as Parameters<typeof verifyJwt>[3])
      } catch (err) {
        if (err instanceof XrpcError) throw err
        throw authRequired(err instanceof Error ? err.message : 'invalid token')
      }
      return stripFragment(payload.iss)
    },
  }
}
