import { IdResolver, parseToAtprotoDocument, type CacheResult, type DidCache, type DidDocument } from '@atproto/identity'
import { safeFetchWrap } from '@atproto-labs/fetch-node'
import { Lru } from '../lib/lru.ts'
import { TransientError } from '../lib/transient.ts'
import { RepoKeys } from './keys.ts'

/** Repos' signing keys for the workers' proofs: the same keys, and key rule, as the stream's. */
export type SigningKeys = RepoKeys

const HOUR = 60 * 60 * 1000

/**
 * `@atproto/identity`'s MemoryCache semantics (stale after an hour, expired after a day) in a
 * bounded LRU: every service-auth issuer and every repo on the stream can add a document, and a
 * wildcard did:web domain can mint them without end.
 */
export class BoundedDidCache implements DidCache {
  private readonly docs: Lru<string, { doc: DidDocument; updatedAt: number }>
  private readonly staleTtl: number
  private readonly maxTtl: number
  constructor(capacity: number, staleTtl = HOUR, maxTtl = 24 * HOUR) {
    this.docs = new Lru(capacity)
    this.staleTtl = staleTtl
    this.maxTtl = maxTtl
  }
  get size(): number {
    return this.docs.size
  }
  async cacheDid(did: string, doc: DidDocument): Promise<void> {
    this.docs.set(did, { doc, updatedAt: Date.now() })
  }
  async refreshCache(did: string, getDoc: () => Promise<DidDocument | null>): Promise<void> {
    const doc = await getDoc()
    if (doc) await this.cacheDid(did, doc)
  }
  async checkCache(did: string): Promise<CacheResult | null> {
    const hit = this.docs.get(did)
    if (!hit) return null
    const age = Date.now() - hit.updatedAt
    return { did, doc: hit.doc, updatedAt: hit.updatedAt, stale: age > this.staleTtl, expired: age > this.maxTtl }
  }
  async clearEntry(did: string): Promise<void> {
    this.docs.delete(did)
  }
  async clear(): Promise<void> {
    this.docs.clear()
  }
}

export interface IdentityOptions {
  plcUrl: string
  /** Loopback and private addresses are refused unless the network is a local one. */
  allowPrivateNetwork: boolean
  timeoutMs?: number
  /** DID documents kept in memory (least recently used dropped first). */
  cacheSize?: number
}

/**
 * DID resolution shared by the ingester (commit signatures) and the API (service auth).
 * DID documents are cached in a bounded LRU (RepoKeys.verifies says when a failed signature refetches one).
 */
export const createIdResolver = (opts: IdentityOptions): IdResolver =>
  new IdResolver({
    plcUrl: opts.plcUrl,
    timeout: opts.timeoutMs ?? 5000,
    didCache: new BoundedDidCache(opts.cacheSize ?? 20_000),
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
export const signingKeys = (idResolver: IdResolver): SigningKeys => new RepoKeys(idResolver)

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
