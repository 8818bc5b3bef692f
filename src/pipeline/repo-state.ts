/**
 * The one owner of a repo's sync state: where its chain stands and whether it is owed a resync.
 * The ingest leader, the backfill worker (in the service or `npm run backfill`) and a next leader
 * all change it through the transitions named here, over one table (repo_state, SQL in
 * src/db/repo-state.ts) and the resync queue.
 *
 * Two positions are kept apart. The *signed* position is the last commit whose signature was
 * checked: it is the only one ever written to Postgres, and the only one a restart or a snapshot
 * compares with. The *tip* is the chain as the stream delivered it, which may run ahead in
 * memory by commits whose signature check is deferred (see verdict-firehose.ts); a tip whose
 * check fails leaves no trace: the repo goes back to its signed position and is resynced.
 *
 * Whether a repo is desynchronized lives only in Postgres (no flag in memory that the CLI or a
 * next leader could not change): the leader inverts every commit of every tracked repo, and a
 * break asks for a resync whatever the repo's status, which only moves the queued request's
 * generation when one is already owed.
 *
 * For the hot path a fixed-size Bloom filter answers "maybe tracked" in memory for every frame,
 * and an LRU holds the recently active repos' positions (a false positive of the filter costs
 * one lookup, then cached as untracked; there are no false negatives).
 */
import type { Pool, PoolClient } from '../db/pool.ts'
import type { Effect } from '../db/effects.ts'
import { endResync, finishResync, readRepoState, repoStateDidsAfter, retryResync, type RepoJob } from '../db/repo-state.ts'
import { Lru } from '../lib/lru.ts'
import { BloomFilter } from '../lib/bloom.ts'

export interface Position {
  rev: string
  /** The commit's MST root; null when none is known to continue from. */
  dataCid: string | null
}

/** A tracked repo's positions in memory. */
export interface HeldRepo {
  signed: Position
  tip: Position
  /** The tip's signed commit while its signature is still to check; null when tip is signed. */
  unsigned: Record<string, unknown> | null
}

export interface RepoStatesOptions {
  /** Bytes of the membership filter: 4 MB keeps false positives under 0.1% up to a million repos. */
  filterBytes?: number
  /** Positions kept in memory. */
  cacheSize?: number
}

export class RepoStates {
  private filter: BloomFilter
  private readonly held: Lru<string, HeldRepo>
  /** Repos the filter matched that the database does not track. */
  private readonly untracked: Lru<string, true>
  /** Repos whose tip awaits its signature check. */
  private readonly unchecked = new Set<string>()
  private readonly filterBytes: number
  private readonly pool: Pool

  constructor(pool: Pool, opts: RepoStatesOptions = {}) {
    this.pool = pool
    this.filterBytes = opts.filterBytes ?? 4 * 1024 * 1024
    this.filter = new BloomFilter(this.filterBytes)
    this.held = new Lru(opts.cacheSize ?? 20_000)
    this.untracked = new Lru(20_000)
  }

  /** Forgets what memory held and fills the filter from the database, page by page. */
  async load(): Promise<number> {
    this.filter = new BloomFilter(this.filterBytes)
    this.held.clear()
    this.untracked.clear()
    this.unchecked.clear()
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

  /** A repo's positions, from memory or Postgres (its signed position); undefined when not tracked. */
  async get(did: string): Promise<HeldRepo | undefined> {
    const hit = this.held.get(did)
    if (hit) return hit
    if (!this.filter.has(did) || this.untracked.has(did)) return undefined
    const stored = await readRepoState(this.pool, did)
    // Another task may have started tracking it meanwhile.
    const now = this.held.get(did)
    if (now) return now
    if (!stored) {
      this.untracked.set(did, true)
      return undefined
    }
    const signed = { rev: stored.rev, dataCid: stored.dataCid }
    const held: HeldRepo = { signed, tip: signed, unsigned: null }
    this.held.set(did, held)
    return held
  }

  /** The positions held in memory only (no lookup). */
  peek(did: string): HeldRepo | undefined {
    return this.held.peek(did)
  }

  /** A repo seen at a signed commit that holds Chive records: its chain is followed from here. */
  track(did: string, at: Position, out: Effect[]): void {
    this.filter.add(did)
    this.untracked.delete(did)
    this.held.set(did, { signed: at, tip: at, unsigned: null })
    out.push({ kind: 'repo', did, rev: at.rev, dataCid: at.dataCid })
  }

  /** A commit whose signature verified: both positions move to it. */
  advanceSigned(did: string, held: HeldRepo, at: Position, out: Effect[]): void {
    held.signed = at
    held.tip = at
    held.unsigned = null
    this.unchecked.delete(did)
    out.push({ kind: 'repo', did, rev: at.rev, dataCid: at.dataCid })
  }

  /** A commit whose signature is checked later: only the tip moves, in memory. */
  holdUnsigned(did: string, held: HeldRepo, at: Position, commit: Record<string, unknown>): void {
    held.tip = at
    held.unsigned = commit
    this.unchecked.add(did)
  }

  /** The tip's signature verified: the chain ties every commit before it to it. */
  confirmSigned(did: string, held: HeldRepo, out: Effect[]): void {
    this.advanceSigned(did, held, held.tip, out)
  }

  /** The tip's signature failed: back to the last signed position (a resync follows). */
  rollBack(did: string, held: HeldRepo): void {
    held.tip = held.signed
    held.unsigned = null
    this.unchecked.delete(did)
  }

  /** The repo is no longer known to be what we hold: a resync, committed with the batch. */
  desynchronize(did: string, reason: string, out: Effect[]): void {
    out.push({ kind: 'resync', did, reason })
  }

  /** Repos whose tip awaits its signature check, handed over once. */
  takeUnchecked(): string[] {
    const dids = [...this.unchecked]
    this.unchecked.clear()
    return dids
  }

  /**
   * A verified snapshot of the repo was applied (by this process's backfill worker): a snapshot
   * newer than the signed position replaces it, and a tip it covers. A tip beyond the snapshot
   * stays to be checked; a stream already past the snapshot goes on from where it is.
   */
  resyncDone(did: string, rev: string, dataCid: string): void {
    const held = this.held.peek(did)
    const at = { rev, dataCid }
    if (!held) {
      this.filter.add(did)
      this.untracked.delete(did)
      this.held.set(did, { signed: at, tip: at, unsigned: null })
      return
    }
    if (held.signed.rev >= rev) return
    held.signed = at
    if (held.tip.rev <= rev) this.rollBack(did, held)
  }
}

/**
 * The worker's side of the same state (the service's backfill worker and the CLI's): a resync
 * ends with a snapshot, is retried after a transient failure for as long as it takes, or ends
 * with a verdict. Each returns whether the repo is now settled (see src/db/repo-state.ts).
 */
export const resyncs = {
  /** The snapshot's position is the repo's signed one, and the repo synced (unless asked for again meanwhile). */
  done: (client: PoolClient, job: RepoJob, records: number, rev: string, dataCid: string): Promise<boolean> =>
    finishResync(client, job, records, rev, dataCid),
  /** Tried again after `delayMs`; true when it left its backfill run to go on as a resync. */
  retry: (client: PoolClient, job: RepoJob, error: string, delayMs: number, maxAttempts: number): Promise<boolean> =>
    retryResync(client, job, error, delayMs, maxAttempts),
  /** The host proves the repo gone or serves what does not verify: nothing to retry. */
  end: (client: PoolClient, job: RepoJob, verdict: string): Promise<boolean> => endResync(client, job, verdict),
}
