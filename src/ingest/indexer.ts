import type { IdResolver } from '@atproto/identity'
import type { Lexicons } from '@atproto/lexicon'
import type { Logger } from '../log.ts'
import type { Pool } from '../db/pool.ts'
import { readCursor } from '../db/cursor.ts'
import { commitBatch } from '../db/store.ts'
import { ACCEPTANCE_NSID, INVITE_NSID, type Collection, type Effect } from '../db/effects.ts'
import { decodeFrame, FrameError, type CommitEvent, type FirehoseEvent, type RepoOp } from './frame.ts'
import { verifyCommitOps, VerificationError, type SigningKeys } from './commit.ts'
import { recordEffect } from './record.ts'
import { RelaySubscription } from './relay.ts'
import type { SubjectVerifier } from './verifier.ts'

export interface IndexerOptions {
  pool: Pool
  relayUrl: string
  /** Seq to start from when no cursor is stored for this relay; undefined: live tail. */
  startCursor: number | undefined
  lexicons: Lexicons
  idResolver: IdResolver
  log: Logger
  /** Told when invites were queued for a subject proof; its counters join the status. */
  verifier?: SubjectVerifier | undefined
  /** How often the cursor is saved when nothing relevant arrives. */
  cursorIntervalMs?: number
  /** Effects gathered before a commit is forced even while frames keep coming. */
  maxBatch?: number
}

/** A stream condition worth an operator's attention (OutdatedCursor, FutureCursor, ...). */
export interface StreamProblem {
  name: string
  message: string | undefined
  at: string
  count: number
}

export interface IndexerStatus {
  relay: string
  connected: boolean
  reconnects: number
  lastDisconnectReason: string | null
  nextRetryInMs: number | null
  lastSeq: number | null
  lastEventTime: string | null
  framesReceived: number
  eventsIndexed: number
  staleIgnored: number
  malformed: Record<string, number>
  rejected: Record<string, number>
  problems: Record<string, StreamProblem>
  startedAt: string
  verification: SubjectVerifier['status'] | null
}

const OUR_COLLECTIONS: ReadonlySet<string> = new Set([INVITE_NSID, ACCEPTANCE_NSID])
// Every Chive record is a possible invite subject: its versions and deletion are tracked.
const CHIVE_PREFIX = 'pub.chive.'
const collectionOf = (path: string): string => {
  const slash = path.indexOf('/')
  return slash === -1 ? path : path.slice(0, slash)
}

const bump = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Reads the relay in order, verifies every commit that touches our collections, and commits
 * the resulting effects together with the cursor. One event at a time: order per repo holds
 * by construction, and a slow database slows reading instead of growing a queue.
 */
export class Indexer {
  private readonly opts: Required<Omit<IndexerOptions, 'startCursor' | 'verifier'>> & Pick<IndexerOptions, 'startCursor' | 'verifier'>
  private readonly keys: SigningKeys
  private relay: RelaySubscription | null = null
  private pending: Effect[] = []
  private lastSeq: number | null = null
  private committedSeq: number | null = null
  private lastCommitAt = 0
  private stopping = false
  private done: Promise<void> | null = null
  readonly status: IndexerStatus

  constructor(opts: IndexerOptions) {
    this.opts = { cursorIntervalMs: 1000, maxBatch: 500, ...opts }
    this.keys = {
      signingKey: (did, refresh) => this.opts.idResolver.did.resolveAtprotoKey(did, refresh),
    }
    this.status = {
      relay: opts.relayUrl,
      connected: false,
      reconnects: 0,
      lastDisconnectReason: null,
      nextRetryInMs: null,
      lastSeq: null,
      lastEventTime: null,
      framesReceived: 0,
      eventsIndexed: 0,
      staleIgnored: 0,
      malformed: {},
      rejected: {},
      problems: {},
      startedAt: new Date().toISOString(),
      verification: null,
    }
  }

  /** Resolves once the stored cursor is read and the subscription is opening. */
  async start(): Promise<void> {
    const stored = await readCursor(this.opts.pool, this.opts.relayUrl)
    this.lastSeq = stored ?? this.opts.startCursor ?? null
    this.committedSeq = stored
    this.relay = new RelaySubscription({
      url: this.opts.relayUrl,
      getCursor: () => this.lastSeq,
      log: this.opts.log,
    })
    this.relay.start()
    this.done = this.loop()
  }

  /** Stops reading, commits what was read, and resolves when the cursor is saved. */
  async stop(): Promise<void> {
    this.stopping = true
    this.relay?.stop()
    await this.done
  }

  private async loop(): Promise<void> {
    const relay = this.relay
    if (!relay) return
    while (!this.stopping) {
      const frame = await relay.next(this.opts.cursorIntervalMs)
      if (frame) {
        try {
          await this.handleFrame(frame)
        } catch (err) {
          // A bug on one event must not stop the stream; the event is counted and logged.
          bump(this.status.malformed, 'internal-error')
          this.opts.log.error({ err }, 'event could not be processed')
        }
      }
      const idleMs = Date.now() - this.lastCommitAt
      // The cursor is saved every interval while it moves; the status, for the health endpoint
      // of every replica, at least every five intervals even when the stream is quiet.
      const due =
        idleMs >= this.opts.cursorIntervalMs &&
        (this.lastSeq !== this.committedSeq || idleMs >= 5 * this.opts.cursorIntervalMs)
      // Relevant effects are committed as soon as the backlog is drained (freshness), and in
      // batches while it is not (throughput).
      if ((this.pending.length > 0 && (relay.buffered === 0 || this.pending.length >= this.opts.maxBatch)) || due) {
        await this.flush(Infinity, due)
      }
    }
    await this.flush(5_000)
  }

  private snapshotStatus(): IndexerStatus {
    const r = this.relay?.status
    return {
      ...this.status,
      connected: r?.connected ?? false,
      reconnects: r?.reconnects ?? 0,
      lastDisconnectReason: r?.lastDisconnectReason ?? null,
      nextRetryInMs: r?.nextRetryInMs ?? null,
      lastSeq: this.lastSeq,
      verification: this.opts.verifier?.status ?? null,
    }
  }

  /** Commits pending effects with the cursor; retries while the database is away. */
  private async flush(giveUpAfterMs = Infinity, force = false): Promise<void> {
    const seq = this.lastSeq
    if (seq === null || (!force && this.pending.length === 0 && seq === this.committedSeq)) return
    const effects = this.pending
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await commitBatch(this.opts.pool, this.opts.relayUrl, effects, seq, this.snapshotStatus())
        this.status.eventsIndexed += res.applied
        this.status.staleIgnored += res.stale
        if (res.queued > 0) this.opts.verifier?.wake()
        break
      } catch (err) {
        if (Date.now() - started > giveUpAfterMs || (this.stopping && giveUpAfterMs === Infinity)) {
          this.opts.log.error({ err, seq }, 'could not commit; the events will be replayed from the stored cursor')
          return
        }
        this.opts.log.error({ err, seq, attempt }, 'commit failed; retrying')
        await sleep(Math.min(5000, 100 * 2 ** attempt))
      }
    }
    this.pending = []
    this.committedSeq = seq
    this.lastCommitAt = Date.now()
  }

  private async handleFrame(frame: Uint8Array): Promise<void> {
    this.status.framesReceived++
    let evt: FirehoseEvent
    try {
      evt = decodeFrame(frame)
    } catch (err) {
      const e = err instanceof FrameError ? err : new FrameError('bad-frame', String(err))
      bump(this.status.malformed, e.reason)
      this.opts.log.warn({ reason: e.reason, seq: e.seq, err: e.message }, 'malformed frame skipped')
      if (e.seq !== undefined) this.advance(e.seq)
      return
    }
    switch (evt.type) {
      case 'error':
      case 'info':
        this.problem(evt.type === 'error' ? evt.error : evt.name, evt.message)
        return
      case 'commit':
        await this.handleCommit(evt)
        this.status.lastEventTime = evt.time || null
        break
      case 'account':
        this.pending.push({ kind: 'account', did: evt.did, active: evt.active, status: evt.status, seq: evt.seq })
        break
      case 'identity':
        // Forget the cached document; the next signature check fetches the new one. A moved
        // PDS may also answer the subject proofs that the old one could not.
        await this.opts.idResolver.did.cache?.clearEntry(evt.did)
        this.pending.push({ kind: 'identity', did: evt.did, seq: evt.seq })
        break
      case 'sync':
      case 'other':
        break
    }
    if (evt.seq !== undefined) this.advance(evt.seq)
  }

  private advance(seq: number): void {
    this.lastSeq = seq
  }

  private problem(name: string, message: string | undefined): void {
    const prev = this.status.problems[name]
    this.status.problems[name] = { name, message, at: new Date().toISOString(), count: (prev?.count ?? 0) + 1 }
    this.opts.log.error({ name, message, relay: this.opts.relayUrl }, 'relay reported a stream problem')
  }

  private reject(op: RepoOp, evt: CommitEvent, reason: string, detail: string): void {
    bump(this.status.rejected, reason)
    this.opts.log.warn({ repo: evt.repo, path: op.path, seq: evt.seq, reason, detail }, 'op rejected')
    this.pending.push({
      kind: 'rejection',
      uri: `at://${evt.repo}/${op.path}`,
      collection: collectionOf(op.path),
      repo: evt.repo,
      rev: undefined,
      cid: op.cid?.toString(),
      seq: evt.seq,
      reason,
      detail,
      record: undefined,
    })
  }

  private async handleCommit(evt: CommitEvent): Promise<void> {
    const relevant = evt.ops.filter((op) => collectionOf(op.path).startsWith(CHIVE_PREFIX))
    if (relevant.length === 0) return
    let result: Awaited<ReturnType<typeof verifyCommitOps>> | undefined
    for (let attempt = 0; result === undefined; attempt++) {
      try {
        result = await verifyCommitOps(evt, relevant, this.keys)
      } catch (err) {
        if (err instanceof VerificationError) {
          for (const op of relevant) this.reject(op, evt, err.reason, err.message)
          return
        }
        // The DID document could not be fetched: an outage is not a forgery, so wait a little.
        if (attempt >= 2 || this.stopping) {
          for (const op of relevant) this.reject(op, evt, 'identity-unavailable', (err as Error).message)
          return
        }
        await sleep(500 * 2 ** attempt)
      }
    }
    for (const { op, reason } of result.unproven) this.reject(op, evt, 'unproven-op', reason)
    for (const { op, record } of result.verified) {
      const uri = `at://${evt.repo}/${op.path}`
      if (!OUR_COLLECTIONS.has(collectionOf(op.path))) {
        const cid = op.action === 'delete' ? null : (op.cid?.toString() ?? null)
        const base = { uri, repo: evt.repo, collection: collectionOf(op.path), rev: evt.rev, seq: evt.seq }
        this.pending.push({ kind: 'subject', ...base, action: op.action, cid })
        continue
      }
      const collection = collectionOf(op.path) as Collection
      if (op.action === 'delete' || record === null) {
        this.pending.push({ kind: 'delete', uri, collection, repo: evt.repo, rev: evt.rev, seq: evt.seq })
        continue
      }
      const effect = recordEffect(
        this.opts.lexicons,
        { uri, repo: evt.repo, collection, rev: evt.rev, seq: evt.seq, cid: op.cid?.toString() ?? '' },
        record,
      )
      if (effect.kind === 'rejection') {
        bump(this.status.rejected, effect.reason)
        this.opts.log.warn({ uri, seq: evt.seq, reason: effect.reason, detail: effect.detail }, 'record rejected')
      }
      this.pending.push(effect)
    }
  }
}
