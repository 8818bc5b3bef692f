import { IdResolver, MemoryCache, parseToAtprotoDocument } from '@atproto/identity'
import { safeFetchWrap } from '@atproto-labs/fetch-node'
import type { SigningKeys } from './ingest/commit.ts'
import { TransientError } from './ingest/subject.ts'

export interface IdentityOptions {
  plcUrl: string
  /** Loopback and private addresses are refused unless the network is a local one. */
  allowPrivateNetwork: boolean
  timeoutMs?: number
}

/**
 * DID resolution shared by the ingester (commit signatures) and the API (service auth).
 * DID documents are cached in memory; a failed signature check refreshes once.
 */
export const createIdResolver = (opts: IdentityOptions): IdResolver =>
  new IdResolver({
    plcUrl: opts.plcUrl,
    timeout: opts.timeoutMs ?? 5000,
    didCache: new MemoryCache(60 * 60 * 1000, 24 * 60 * 60 * 1000),
    // DID documents are written by anyone: keep the SSRF-safe fetch unless told otherwise.
    fetch: opts.allowPrivateNetwork
      ? globalThis.fetch
      : safeFetchWrap({ allowIpHost: false, allowImplicitRedirect: false }),
  })

/**
 * The client for subject proofs: PDS URLs come from DID documents, so requests are bounded in
 * time and size, and loopback / private addresses are refused unless the network is local.
 */
export const createProofFetch = (opts: { allowPrivateNetwork: boolean; timeoutMs: number; maxBytes: number }) =>
  safeFetchWrap({
    ssrfProtection: !opts.allowPrivateNetwork,
    timeout: opts.timeoutMs,
    responseMaxSize: opts.maxBytes,
    allowImplicitRedirect: false,
  })

/** Repos' signing keys as the commit checks ask for them, from the DID documents. */
export const signingKeys = (idResolver: IdResolver): SigningKeys => ({
  signingKey: (did, refresh) => idResolver.did.resolveAtprotoKey(did, refresh),
})

/** The DID a key or issuer refers to, without a `#fragment`. */
export const stripFragment = (did: string): string => {
  const hash = did.indexOf('#')
  return hash === -1 ? did : did.slice(0, hash)
}

/** The PDS a DID document names; any failure to find it is worth a later retry. */
export const resolvePds = async (idResolver: IdResolver, did: string): Promise<string> => {
  let pds: string | undefined
  try {
    const doc = await idResolver.did.resolve(did)
    pds = doc ? parseToAtprotoDocument(doc).pds : undefined
  } catch (err) {
    throw new TransientError('identity-unavailable', (err as Error).message)
  }
  if (!pds) throw new TransientError('identity-unavailable', `no PDS in the DID document of ${did}`)
  return pds
}
