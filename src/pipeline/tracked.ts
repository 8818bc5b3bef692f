/**
 * The repos whose chain we follow (any repo that has held an invite or acceptance), in memory
 * that does not grow with their number: a fixed-size Bloom filter answers "maybe tracked" on the
 * reading path for every frame, and the chain positions live in Postgres with an LRU of the
 * recently active ones in front. A false positive of the filter costs one lookup (then cached as
 * untracked); there are no false negatives, so no tracked repo's commit is ever skipped.
 */
import type { Pool } from '../db/pool.ts'
import { readRepoState, repoStateDidsAfter, type RepoState } from '../db/backfill.ts'
import { Lru } from '../lib/lru.ts'
import { BloomFilter } from '../lib/bloom.ts'

/** A tracked repo's position in memory; `unsigned` is a commit whose signature is still to check. */
export interface HeldRepo {
  rev: string
  dataCid: string | null
  status: string
  unsigned: { rev: string; signed: Record<string, unknown> } | null
}

export interface TrackedReposOptions {
  /** Bytes of the membership filter: 4 MB keeps false positives under 0.1% up to a million repos. */
  filterBytes?: number
  /** Positions kept in memory. */
  cacheSize?: number
}

export class TrackedRepos {
  private filter: BloomFilter
  private readonly held: Lru<string, HeldRepo>
  /** Repos the filter matched that the database does not track. */
  private readonly untracked: Lru<string, true>
  private readonly filterBytes: number

  private readonly pool: Pool

  constructor(pool: Pool, opts: TrackedReposOptions = {}) {
    this.pool = pool
    this.filterBytes = opts.filterBytes ?? 4 * 1024 * 1024
    this.filter = new BloomFilter(this.filterBytes)
    this.held = new Lru(opts.cacheSize ?? 20_000)
    this.untracked = new Lru(20_000)
  }

  /** Fills the filter from the database, page by page. */
  async load(): Promise<number> {
    this.filter = new BloomFilter(this.filterBytes)
    this.held.clear()
    this.untracked.clear()
    let after = ''
    let n = 0
    for (;;) {
      const dids = await repoStateDidsAfter(this.pool, after, 10_000)
      for (const did of dids) this.filter.add(did)
      n += dids.length
      if (dids.length < 10_000) return n
      after = dids[dids.length - 1] as string
    }
  }

  /** The reading path's question: false means certainly not tracked. */
  mayBeTracked(did: string): boolean {
    return this.filter.has(did) && !this.untracked.has(did)
  }

  /** The position held for a repo, from memory or Postgres; undefined when not tracked. */
  async get(did: string): Promise<HeldRepo | undefined> {
    const hit = this.held.get(did)
    if (hit) return hit
    if (!this.filter.has(did) || this.untracked.has(did)) return undefined
    const stored: RepoState | undefined = await readRepoState(this.pool, did)
    // Another task may have started tracking it meanwhile.
    const now = this.held.get(did)
    if (now) return now
    if (!stored) {
      this.untracked.set(did, true)
      return undefined
    }
    const held: HeldRepo = { rev: stored.rev, dataCid: stored.dataCid, status: stored.status, unsigned: null }
    this.held.set(did, held)
    return held
  }

  /** The position held in memory only (no lookup). */
  peek(did: string): HeldRepo | undefined {
    return this.held.peek(did)
  }

  track(did: string, held: HeldRepo): void {
    this.filter.add(did)
    this.untracked.delete(did)
    this.held.set(did, held)
  }
}
