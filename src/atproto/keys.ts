import type { IdResolver } from '@atproto/identity'
import { Lru } from '../lib/lru.ts'
import { TransientError } from '../lib/transient.ts'
import { parsePublicKey, verifyAtcuteCommitSignature, type PublicKey } from './signature.ts'

/** Only these DID methods can own a repo: a did:key repo would certify itself. */
export const isRepoDid = (did: string): boolean => did.startsWith('did:plc:') || did.startsWith('did:web:')

/** A bad signature refetches the DID document at most this often per DID. */
const REFRESH_EVERY_MS = 60_000

/**
 * Repos' signing keys for every check of a signed commit (the stream, host proofs, snapshots),
 * parsed once per DID (the DID document's multibase key is decoded and its point decompressed
 * only when the document is fetched) and kept in a bounded LRU. `#identity` drops a DID's entry.
 * Lookups of one DID share one fetch.
 */
export class RepoKeys {
  private readonly keys: Lru<string, { key: PublicKey; fetchedAt: number }>
  private readonly fetching = new Map<string, Promise<PublicKey>>()

  private readonly idResolver: IdResolver

  constructor(idResolver: IdResolver, capacity = 100_000) {
    this.idResolver = idResolver
    this.keys = new Lru(capacity)
  }

  get size(): number {
    return this.keys.size
  }

  /**
   * The key held for `did`; when none is, its fetch starts in the background and a
   * TransientError ('identity-pending') says when to come back, so that a caller waiting on a
   * slow or hanging DID host holds nothing meanwhile.
   */
  now(did: string): PublicKey {
    const hit = this.cached(did)
    if (hit) return hit
    const ready = this.get(did).then(
      () => true,
      () => false,
    )
    throw new TransientError('identity-pending', `${did}: fetching its DID document`, undefined, ready)
  }

  /** The key held for `did`, without a fetch. */
  cached(did: string): PublicKey | undefined {
    return this.keys.get(did)?.key
  }

  /** Whether a refetch may be worth it after a failed signature (rate-limited per DID). */
  private mayRefresh(did: string): boolean {
    const held = this.keys.peek(did)
    return !held || Date.now() - held.fetchedAt >= REFRESH_EVERY_MS
  }

  /**
   * The repo's key; `refresh` fetches the DID document again. Any failure to get a usable key
   * (PLC or did:web host down, slow, answering nonsense) is a TransientError: it says nothing
   * about the commit.
   */
  get(did: string, refresh = false): Promise<PublicKey> {
    if (!refresh) {
      const hit = this.cached(did)
      if (hit) return Promise.resolve(hit)
    }
    const running = this.fetching.get(did)
    if (running) return running
    const fetch = (async () => {
      let didKey: string
      try {
        didKey = await this.idResolver.did.resolveAtprotoKey(did, refresh)
      } catch (err) {
        throw new TransientError('identity-unavailable', `${did}: ${(err as Error).message}`)
      }
      let key: PublicKey
      try {
        key = parsePublicKey(didKey)
      } catch (err) {
        throw new TransientError('identity-unavailable', `${did}: unusable signing key: ${(err as Error).message}`)
      }
      this.keys.set(did, { key, fetchedAt: Date.now() })
      return key
    })().finally(() => this.fetching.delete(did))
    this.fetching.set(did, fetch)
    return fetch
  }

  /**
   * Whether `signed` (a commit decoded by `@atcute/cbor`) is signed by the repo's key. The key
   * rule, the only one: a signature that fails is checked once more with a freshly fetched key
   * (it may have rotated), at most once per DID per REFRESH_EVERY_MS, so that forged commits
   * cannot make us hammer a DID host. `first` is the key already held, when the caller has it.
   */
  async verifies(did: string, signed: Record<string, unknown>, first?: PublicKey): Promise<boolean> {
    const key = first ?? this.cached(did) ?? (await this.get(did))
    if (verifyAtcuteCommitSignature(signed, key)) return true
    if (!this.mayRefresh(did)) return false
    return verifyAtcuteCommitSignature(signed, await this.get(did, true))
  }

  /** `#identity`: the key and the cached DID document both go; the next use fetches them afresh. */
  async forget(did: string): Promise<void> {
    this.keys.delete(did)
    await this.idResolver.did.cache?.clearEntry(did).catch(() => {})
  }
}
