/**
 * Checkpointing: effects gathered from every repo's processing, committed with the cursor in one
 * transaction, one transaction in flight at a time while reading and verifying go on.
 *
 * The stored cursor is the low-water mark of low-water-mark.ts, committed in the same
 * transaction as every effect of the events at or below it. Effects of events above the mark
 * may commit early: every write is rev-guarded, so replaying them after a crash changes nothing.
 */
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import type { Effect, RepoPosition } from '../db/effects.ts'
import { applyEffects, commitBatch, type BatchResult } from '../db/store.ts'
import { saveIngestStatus } from '../db/stream-cursor.ts'
import { LowWaterMark } from './low-water-mark.ts'
import { backoff } from '../lib/backoff.ts'

export interface CheckpointOptions {
  pool: Pool
  relayUrl: string
  log: Logger
  /** The ingester's status, stored with each commit for every replica's health endpoint. */
  status: () => unknown
  /** Effects after which a commit starts even while frames keep coming. */
  maxBatch: number
  /** The cursor is saved at least this often while it moves. */
  intervalMs: number
  onCommitted: (result: BatchResult, backfillWanted: boolean) => void
  /** A commit ended (or gave up): effects gathered meanwhile may be due. */
  onSettled: () => void
}

/** Whether a reader could see the effect: bookkeeping can wait for the next batch. */
const isVisible = (e: Effect): boolean => e.kind !== 'repo' && e.kind !== 'identity'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class Checkpoint {
  readonly marks = new LowWaterMark()
  private pending: Effect[] = []
  /** Chain positions, one per repo per batch: the latest wins. */
  private positions = new Map<string, RepoPosition>()
  private visible = false
  private backfillWanted = false
  private inflight: Promise<void> | null = null
  private lastCommitAt = 0
  private stopping = false
  committed: number | null = null
  /** Consecutive failed commits (the database is away): reading waits while this is non-zero. */
  failures = 0

  private readonly opts: CheckpointOptions

  constructor(opts: CheckpointOptions) {
    this.opts = opts
  }

  reset(cursor: number | null, startFrom: number | null): void {
    this.marks.reset(startFrom)
    this.committed = cursor
    this.pending = []
    this.positions = new Map()
    this.visible = false
    this.backfillWanted = false
    this.lastCommitAt = 0
    this.stopping = false
    this.failures = 0
  }

  get size(): number {
    return this.pending.length + this.positions.size
  }

  get committing(): boolean {
    return this.inflight !== null
  }

  push(effect: Effect): void {
    if (effect.kind === 'repo') {
      this.positions.set(effect.did, effect)
      return
    }
    this.pending.push(effect)
    if (isVisible(effect)) this.visible = true
    if (effect.kind === 'gap' || effect.kind === 'resync') this.backfillWanted = true
  }

  /**
   * Starts a commit when one is due and none is in flight. `drained`: nothing is waiting to be
   * read or processed, so visible effects go out at once (freshness); under a backlog they go
   * in batches (throughput).
   */
  maybeCommit(drained: boolean): void {
    if (this.inflight) return
    const idleMs = Date.now() - this.lastCommitAt
    const seq = this.marks.value
    const moved = seq !== this.committed
    const due = idleMs >= this.opts.intervalMs && (moved || this.size > 0 || idleMs >= 5 * this.opts.intervalMs)
    if ((this.visible && drained) || this.size >= this.opts.maxBatch || due) this.commit()
  }

  /** Commits until nothing is pending (on stop); gives up after `giveUpAfterMs` of failures. */
  async flush(giveUpAfterMs: number): Promise<void> {
    this.stopping = true
    const until = Date.now() + giveUpAfterMs
    await this.inflight
    this.commit(until)
    await this.inflight
  }

  private commit(giveUpAt = Infinity): void {
    const seq = this.marks.value
    const effects = this.pending
    if (this.positions.size > 0) effects.push(...this.positions.values())
    const backfillWanted = this.backfillWanted
    this.pending = []
    this.positions = new Map()
    this.visible = false
    this.backfillWanted = false
    this.inflight = this.write(effects, seq, backfillWanted, giveUpAt).finally(() => {
      this.inflight = null
      if (!this.stopping) this.opts.onSettled()
    })
  }

  /** Retries while the database is away: the batch is never dropped, the cursor never passes it. */
  private async write(effects: Effect[], seq: number | null, backfillWanted: boolean, giveUpAt: number): Promise<void> {
    if (effects.length === 0 && seq === null) return this.writeStatus()
    for (let attempt = 0; ; attempt++) {
      try {
        // Effects of seq-less messages (#info) can come before any seq: commit them alone.
        const result =
          seq === null
            ? await applyEffects(this.opts.pool, effects)
            : await commitBatch(this.opts.pool, this.opts.relayUrl, effects, seq, this.opts.status())
        this.failures = 0
        if (seq !== null) this.committed = seq
        this.lastCommitAt = Date.now()
        this.opts.onCommitted(result, backfillWanted)
        return
      } catch (err) {
        this.failures++
        if (Date.now() > giveUpAt || (this.stopping && giveUpAt === Infinity)) {
          this.opts.log.error({ err, seq }, 'could not commit; the events will be replayed from the stored cursor')
          return
        }
        this.opts.log.error({ err, seq, attempt }, 'commit failed; retrying')
        await sleep(backoff(attempt + 1, 100, 5000))
      }
    }
  }

  /**
   * Nothing to commit and no cursor yet (a relay that never answered, say): the status alone, so
   * that health shows what the ingester is doing. Best effort: the next one follows shortly.
   */
  private async writeStatus(): Promise<void> {
    try {
      await saveIngestStatus(this.opts.pool, this.opts.relayUrl, this.opts.status())
    } catch (err) {
      this.opts.log.debug({ err }, 'could not write the ingester status')
    }
    this.lastCommitAt = Date.now()
  }
}
