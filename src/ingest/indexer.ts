import type { IdResolver } from '@atproto/identity'
import type { Lexicons } from '@atproto/lexicon'
import type { Logger } from '../log.ts'
import type { Pool } from '../db/pool.ts'
import { knownRelays, readCursor } from '../db/cursor.ts'
import { applyEffects, commitBatch } from '../db/store.ts'
import { CHIVE_PREFIX, OUR_COLLECTIONS, type Collection, type Effect } from '../db/effects.ts'
import { parseToAtprotoDocument } from '@atproto/identity'
import { loadRepoStates, readRepoState, requestFullBackfill, type RepoState } from '../db/backfill.ts'
import { decodeFrame, FrameError, type CommitEvent, type FirehoseEvent, type IdentityEvent, type RepoOp, type SyncEvent } from './frame.ts'
import { openSignedRepo, verifyCommitOps, VerificationError, type SignedRepo, type SigningKeys } from './commit.ts'
import { recordEffect } from './record.ts'
import { RelaySubscription } from './relay.ts'
import type { SubjectVerifier } from './verifier.ts'
import { bump } from './counts.ts'
import { signingKeys } from '../identity.ts'

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
  /** Schedule a full backfill when events may have been missed (first start, relay change, gaps). */
  backfillOnGap?: boolean
  /** Told when a backfill or resync was requested. */
  onBackfillRequested?: () => void
  /** Reopen a relay connection that sends nothing for this long. */
  relayIdleTimeoutMs?: number
  relayMaxBackoffMs?: number
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
  stalls: number
  lastDisconnectReason: string | null
  nextRetryInMs: number | null
  lastSeq: number | null
  lastEventTime: string | null
  framesReceived: number
  eventsIndexed: number
  staleIgnored: number
  resyncsRequested: number
  malformed: Record<string, number>
  rejected: Record<string, number>
  problems: Record<string, StreamProblem>
  startedAt: string
  verification: SubjectVerifier['status'] | null
}

const collectionOf = (path: string): string => {
  const slash = path.indexOf('/')
  return slash === -1 ? path : path.slice(0, slash)
}

type VerifiedCommit = Awaited<ReturnType<typeof verifyCommitOps>>

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Reads the relay in order, verifies every commit that touches our collections, and commits
 * the resulting effects together with the cursor. One event at a time: order per repo holds
 * by construction, and a slow database slows reading instead of growing a queue.
 */
export class Indexer {
  private readonly opts: Required<Omit<IndexerOptions, 'startCursor' | 'verifier' | 'onBackfillRequested'>> &
    Pick<IndexerOptions, 'startCursor' | 'verifier' | 'onBackfillRequested'>
  private readonly keys: SigningKeys
  private relay: RelaySubscription | null = null
  private pending: Effect[] = []
  /** Whether a reader could see any of `pending`, and whether it asks for a backfill. */
  private visible = false
  private backfillWanted = false
  /** Chain positions of tracked repos (those that have held an invite or acceptance). */
  private repos = new Map<string, RepoState>()
  private lastSeq: number | null = null
  private committedSeq: number | null = null
  private lastCommitAt = 0
  private stopping = false
  private done: Promise<void> | null = null
  readonly status: IndexerStatus

  constructor(opts: IndexerOptions) {
    this.opts = { cursorIntervalMs: 1000, maxBatch: 500, backfillOnGap: true, relayIdleTimeoutMs: 120_000, relayMaxBackoffMs: 30_000, ...opts }
    this.keys = signingKeys(this.opts.idResolver)
    this.status = {
      relay: opts.relayUrl,
      connected: false,
      reconnects: 0,
      stalls: 0,
      lastDisconnectReason: null,
      nextRetryInMs: null,
      lastSeq: null,
      lastEventTime: null,
      framesReceived: 0,
      eventsIndexed: 0,
      staleIgnored: 0,
      resyncsRequested: 0,
      malformed: {},
      rejected: {},
      problems: {},
      startedAt: new Date().toISOString(),
      verification: null,
    }
  }

  /** Resolves once the stored cursor is read and the subscription is opening. */
  async start(): Promise<void> {
    // Restartable: a replica that regains leadership resumes from the committed cursor.
    this.stopping = false
    this.pending = []
    this.visible = false
    this.backfillWanted = false
    this.lastCommitAt = 0
    const stored = await readCursor(this.opts.pool, this.opts.relayUrl)
    this.repos = await loadRepoStates(this.opts.pool)
    if (stored === null && this.opts.backfillOnGap) {
      const known = await knownRelays(this.opts.pool)
      const reason = known.length === 0 ? 'first start: nothing indexed yet' : `relay changed from ${known.join(', ')}`
      if ((await requestFullBackfill(this.opts.pool, reason)) !== null) {
        this.opts.log.info({ reason }, 'full backfill requested')
        this.opts.onBackfillRequested?.()
      }
    }
    this.lastSeq = stored ?? this.opts.startCursor ?? null
    this.committedSeq = stored
    this.relay = new RelaySubscription({
      url: this.opts.relayUrl,
      getCursor: () => this.lastSeq,
      log: this.opts.log,
      idleTimeoutMs: this.opts.relayIdleTimeoutMs,
      maxBackoffMs: this.opts.relayMaxBackoffMs,
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
      const frame = relay.take() ?? (await relay.next(this.opts.cursorIntervalMs))
      if (frame) {
        try {
          // Most frames are done synchronously; only those with work to wait for return a promise.
          const work = this.handleFrame(frame)
          if (work) await work
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
      if ((this.visible && relay.buffered === 0) || this.pending.length >= this.opts.maxBatch || due) {
        await this.flush(Infinity, due)
      }
    }
    await this.flush(5_000)
  }

  /**
   * Effects a reader can see. Bookkeeping (chain positions, identity requeues) and the account
   * status of repos that never held our records (served queries look only at inviters and
   * acceptance authors; moderators' audit can wait) ride along with the next batch.
   */
  private readonly isVisible = (e: Effect): boolean =>
    e.kind !== 'repo' && e.kind !== 'identity' && (e.kind !== 'account' || this.repos.has(e.did))

  private push(effect: Effect): void {
    this.pending.push(effect)
    if (this.isVisible(effect)) this.visible = true
    if (effect.kind === 'gap' || effect.kind === 'resync') this.backfillWanted = true
  }

  snapshotStatus(): IndexerStatus {
    const r = this.relay?.status
    return {
      ...this.status,
      connected: r?.connected ?? false,
      reconnects: r?.reconnects ?? 0,
      stalls: r?.stalls ?? 0,
      lastDisconnectReason: r?.lastDisconnectReason ?? null,
      nextRetryInMs: r?.nextRetryInMs ?? null,
      lastSeq: this.lastSeq,
      verification: this.opts.verifier?.status ?? null,
    }
  }

  /** Commits pending effects with the cursor; retries while the database is away. */
  private async flush(giveUpAfterMs = Infinity, force = false): Promise<void> {
    const seq = this.lastSeq
    if (this.pending.length === 0 && (seq === null || (!force && seq === this.committedSeq))) return
    const effects = this.pending
    const backfillWanted = this.backfillWanted
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      try {
        // Effects of seq-less messages (#info) can come before any seq: commit them alone.
        const res =
          seq === null
            ? await applyEffects(this.opts.pool, effects)
            : await commitBatch(this.opts.pool, this.opts.relayUrl, effects, seq, this.snapshotStatus())
        this.status.eventsIndexed += res.applied
        this.status.staleIgnored += res.stale
        if (res.queued > 0) this.opts.verifier?.wake()
        if (backfillWanted) this.opts.onBackfillRequested?.()
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
    this.visible = false
    this.backfillWanted = false
    this.committedSeq = seq
    this.lastCommitAt = Date.now()
  }

  private handleFrame(frame: Uint8Array): Promise<void> | undefined {
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
      case 'info': {
        const name = evt.type === 'error' ? evt.error : evt.name
        this.problem(name, evt.message)
        if (name === 'OutdatedCursor') this.gap('the relay no longer holds events since our cursor')
        if (name === 'FutureCursor') {
          // The relay does not know our cursor (a reset or another relay): go live, backfill the rest.
          this.lastSeq = null
          this.gap('the relay reported our cursor in its future')
        }
        return
      }
      case 'commit': {
        this.status.lastEventTime = evt.time || null
        const { seq } = evt
        // The 99.8%: no Chive record, no tracked repo. Nothing to verify, nothing to wait for.
        if (!this.repos.has(evt.repo) && !evt.ops.some((op) => op.path.startsWith(CHIVE_PREFIX))) {
          this.advance(seq)
          return
        }
        return this.handleCommit(evt).then(() => this.advance(seq))
      }
      case 'account':
        this.push({ kind: 'account', did: evt.did, active: evt.active, status: evt.status, seq: evt.seq })
        this.advance(evt.seq)
        return
      case 'identity': {
        // Forget the cached document (the next check fetches the new one); a moved PDS may
        // also answer the subject proofs that the old one could not.
        const { seq } = evt
        if (!this.repos.has(evt.did)) {
          // Not a repo whose signing key we follow: nothing to compare, no need to wait.
          void this.opts.idResolver.did.cache?.clearEntry(evt.did).catch(() => {})
          this.push({ kind: 'identity', did: evt.did, seq })
          this.advance(seq)
          return
        }
        return this.handleIdentity(evt).then(() => this.advance(seq))
      }
      case 'sync': {
        const { seq } = evt
        return this.handleSync(evt).then(() => this.advance(seq))
      }
      case 'other':
        if (evt.seq !== undefined) this.advance(evt.seq)
        return
    }
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
    this.push({
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

  /** Verifies a commit, waiting a little when the DID document cannot be fetched. */
  private async verify(evt: CommitEvent, ops: readonly RepoOp[]): Promise<VerifiedCommit | { reason: string; detail: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await verifyCommitOps(evt, ops, this.keys)
      } catch (err) {
        if (err instanceof VerificationError) return { reason: err.reason, detail: err.message }
        // An identity outage is not a forgery: retry before giving up on the event.
        if (attempt >= 2 || this.stopping) return { reason: 'identity-unavailable', detail: (err as Error).message }
        await sleep(500 * 2 ** attempt)
      }
    }
  }

  private gap(reason: string): void {
    if (!this.opts.backfillOnGap) return
    this.opts.log.warn({ reason }, 'gap in the stream; full backfill requested')
    this.push({ kind: 'gap', reason })
  }

  private resync(did: string, reason: string): void {
    this.status.resyncsRequested++
    this.opts.log.warn({ did, reason }, 'repo out of sync; resync queued')
    this.push({ kind: 'resync', did, reason })
  }

  /**
   * Sync 1.1: a commit of a tracked repo must continue the chain we hold (`since` = our rev,
   * `prevData` = our MST root when the PDS sends it). A break means missed events: resync.
   */
  private async checkChain(evt: CommitEvent, held: RepoState): Promise<void> {
    if (evt.rev <= held.rev) return
    const continues = (s: RepoState) =>
      evt.since === s.rev && (evt.prevData === null || s.dataCid === null || evt.prevData === s.dataCid)
    if (continues(held)) return
    // A backfill (maybe in another process) may have moved the repo on: ask the database first.
    const stored = await readRepoState(this.opts.pool, evt.repo)
    if (stored && (evt.rev <= stored.rev || continues(stored))) return
    this.resync(evt.repo, `commit ${evt.rev} continues ${evt.since ?? 'nothing'}, not ${held.rev}`)
  }

  /** A repo synced from its PDS: its chain position is now the snapshot's. */
  trackRepo(did: string, rev: string, dataCid: string): void {
    const held = this.repos.get(did)
    if (!held || held.rev < rev) this.repos.set(did, { rev, dataCid, status: 'synced' })
  }

  private async handleCommit(evt: CommitEvent): Promise<void> {
    // Only commits with a Chive op or of a tracked repo get here (see handleFrame).
    const relevant = evt.ops.filter((op) => op.path.startsWith(CHIVE_PREFIX))
    const held = this.repos.get(evt.repo)
    const result = await this.verify(evt, relevant)
    if (!('verified' in result)) {
      for (const op of relevant) this.reject(op, evt, result.reason, result.detail)
      if (held) this.resync(evt.repo, `commit ${evt.rev} failed verification: ${result.reason}`)
      return
    }
    if (held) await this.checkChain(evt, held)
    for (const { op, reason } of result.unproven) this.reject(op, evt, 'unproven-op', reason)
    const touchesOurs = relevant.some((op) => OUR_COLLECTIONS.has(collectionOf(op.path)))
    if (result.unproven.length > 0 && (held || touchesOurs)) this.resync(evt.repo, `commit ${evt.rev} lacks proof blocks`)
    for (const { op, record } of result.verified) {
      const uri = `at://${evt.repo}/${op.path}`
      if (!OUR_COLLECTIONS.has(collectionOf(op.path))) {
        const cid = op.action === 'delete' ? null : (op.cid?.toString() ?? null)
        const base = { uri, repo: evt.repo, collection: collectionOf(op.path), rev: evt.rev, seq: evt.seq }
        this.push({ kind: 'subject', ...base, action: op.action, cid })
        continue
      }
      const collection = collectionOf(op.path) as Collection
      if (op.action === 'delete' || record === null) {
        this.push({ kind: 'delete', uri, collection, repo: evt.repo, rev: evt.rev, seq: evt.seq })
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
      this.push(effect)
    }
    // A repo that has held one of our records is tracked from now on.
    if ((held || touchesOurs) && (!held || evt.rev > held.rev)) {
      this.repos.set(evt.repo, { rev: evt.rev, dataCid: result.data, status: held?.status ?? 'synced' })
      this.push({ kind: 'repo', did: evt.repo, rev: evt.rev, dataCid: result.data })
    }
  }

  /** `#sync`: the repo is now at this signed commit. Anything but what we hold means resync. */
  private async handleSync(evt: SyncEvent): Promise<void> {
    const held = this.repos.get(evt.did)
    if (!held) return
    let repo: SignedRepo
    try {
      repo = await openSignedRepo(evt.blocks, evt.did, this.keys)
    } catch (err) {
      bump(this.status.rejected, err instanceof VerificationError ? err.reason : 'bad-sync')
      this.resync(evt.did, `#sync ${evt.rev} could not be verified: ${(err as Error).message}`)
      return
    }
    if (repo.rev !== evt.rev) {
      this.resync(evt.did, `#sync rev ${evt.rev} is not its commit's rev ${repo.rev}`)
      return
    }
    if (repo.rev === held.rev && repo.data.toString() === held.dataCid) return
    if (repo.rev < held.rev) return
    this.resync(evt.did, `#sync moved the repo to ${repo.rev}, we hold ${held.rev}`)
  }

  /** `#identity` of a tracked repo: a new signing key means commits we hold may not be its. */
  private async handleIdentity(evt: IdentityEvent): Promise<void> {
    const cache = this.opts.idResolver.did.cache
    const before = await cache?.checkCache(evt.did).catch(() => null)
    await cache?.clearEntry(evt.did)
    this.push({ kind: 'identity', did: evt.did, seq: evt.seq })
    if (!before) return
    const oldKey = parseToAtprotoDocument(before.doc).signingKey
    try {
      const newKey = await this.opts.idResolver.did.resolveAtprotoKey(evt.did, true)
      if (newKey !== oldKey) this.resync(evt.did, 'the signing key changed')
    } catch (err) {
      this.resync(evt.did, `identity could not be resolved after #identity: ${(err as Error).message}`)
    }
  }
}
