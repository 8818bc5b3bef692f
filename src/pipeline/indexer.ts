/**
 * The ingester: reading and filtering on the reading path, per-repo processing, checkpointing.
 *
 *   sources (open.ts: relay.ts socket; firehose.ts | jetstream-message.ts readers) ─one message
 *   union (events.ts)─> router.ts ─per repo─> repo-queue.ts ─> verdicts.ts (verdict-firehose.ts,
 *   verdict-jetstream.ts) ─effects─> checkpoint.ts ─one tx─> Postgres
 *
 * This file wires the stages and runs the reading loop (slices of frames, back-pressure, commit
 * checks); each invariant is kept by the stage that names it: the routing rule in router.ts,
 * per-repo order in repo-queue.ts, what counts as a verdict in verdict.ts, a repo's sync state in
 * repo-state.ts, the cursor in low-water-mark.ts, where reading resumes in resume.ts.
 */
import { latestRecordRev } from '../db/backfill.ts'
import type { Effect } from '../db/effects.ts'
import { RepoKeys } from '../atproto/keys.ts'
import { RecordProofs } from '../atproto/record-proof.ts'
import { bump } from '../lib/counts.ts'
import { TransientError } from '../lib/transient.ts'
import { readFirehoseFrame } from '../sources/firehose.ts'
import { JetstreamSubscription } from '../sources/jetstream.ts'
import { readJetstreamFrame } from '../sources/jetstream-message.ts'
import { openSource, type Source } from '../sources/open.ts'
import { Checkpoint } from './checkpoint.ts'
import type { IndexerOptions, IngestLimits } from './options.ts'
import { Reconciler } from './reconcile.ts'
import { RepoQueues } from './repo-queue.ts'
import { RepoStates } from './repo-state.ts'
import { resumePoint } from './resume.ts'
import { Router, type Job } from './router.ts'
import { ByteRate, initialStatus, recordProblem, type IndexerStatus } from './status.ts'
import { RepoEvents } from './verdicts.ts'

export type { IndexerOptions, IngestLimits, JetstreamSource } from './options.ts'
export type { IndexerStatus, StreamProblem } from './status.ts'

/** Events a parked repo may hold before it is handed to a resync. */
const MAX_PER_REPO = 1000
/** First retry delay of a parked repo (doubling, jittered), and its cap. */
const PARK_BACKOFF_MS = 250
const PARK_MAX_BACKOFF_MS = 30_000
/** How often the cursor is saved when nothing relevant arrives. */
const CURSOR_INTERVAL_MS = 1000
/** Effects gathered before a commit is forced even while frames keep coming. */
const MAX_BATCH = 500

const immediate = () => new Promise<void>((r) => setImmediate(r))

/**
 * Bytes of events read ahead of their processing before reading waits: enough to keep every
 * repo busy, small enough not to show in RSS. Parked repos' events do not count (they have
 * their own bound, `maxQueuedBytes`).
 */
const READ_AHEAD_BYTES = 4 * 1024 * 1024

/** Frames handled before the reading loop lets I/O and repo processing run. */
const SLICE = 256

export class Indexer {
  private readonly opts: IndexerOptions
  private readonly limits: IngestLimits
  private readonly keys: RepoKeys
  private readonly states: RepoStates
  private readonly events: RepoEvents
  private readonly checkpoint: Checkpoint
  private readonly queues: RepoQueues<Job>
  private readonly router: Router
  private relay: Source | null = null
  private readonly proofs: RecordProofs | null
  private readonly reconciler: Reconciler | null
  private readonly byteRate = new ByteRate()
  private lastSeq: number | null = null
  private stopping = false
  private done: Promise<void> | null = null
  private sweeper: NodeJS.Timeout | null = null
  readonly status: IndexerStatus

  constructor(opts: IndexerOptions) {
    this.opts = opts
    this.limits = opts.limits
    this.status = initialStatus(opts.jetstream ? 'jetstream' : 'firehose', opts.relayUrl)
    this.keys = new RepoKeys(this.opts.idResolver)
    this.proofs = opts.jetstream ? new RecordProofs({ idResolver: this.opts.idResolver, keys: this.keys, fetch: opts.jetstream.fetch }) : null
    this.states = new RepoStates(this.opts.pool)
    const jet = opts.jetstream
    this.reconciler =
      jet && this.proofs && jet.reconcileMs > 0
        ? new Reconciler({
            pool: this.opts.pool,
            proofs: this.proofs,
            periodMs: jet.reconcileMs,
            log: this.opts.log,
            enqueue: (did, claim) => this.queues.push(did, { event: claim, mark: null, bytes: 512 }),
          })
        : null
    this.events = new RepoEvents({
      lexicons: this.opts.lexicons,
      keys: this.keys,
      states: this.states,
      log: this.opts.log,
      counts: this.status,
      latestRecordRev: (did) => latestRecordRev(this.opts.pool, did),
      proofs: this.proofs ?? undefined,
    })
    this.checkpoint = new Checkpoint({
      pool: this.opts.pool,
      relayUrl: this.opts.relayUrl,
      log: this.opts.log,
      status: () => this.snapshotStatus(),
      maxBatch: MAX_BATCH,
      intervalMs: CURSOR_INTERVAL_MS,
      onCommitted: (res, backfillWanted) => {
        this.status.eventsIndexed += res.applied
        this.status.staleIgnored += res.stale
        if (res.queued > 0) this.opts.verifier?.wake()
        if (backfillWanted) this.opts.onBackfillRequested?.()
      },
      onSettled: () => this.kick(),
    })
    this.queues = new RepoQueues<Job>({
      concurrency: this.limits.concurrency,
      maxPerRepo: MAX_PER_REPO,
      maxBytes: this.limits.maxQueuedBytes,
      maxParkMs: this.limits.maxParkMs,
      baseBackoffMs: PARK_BACKOFF_MS,
      maxBackoffMs: PARK_MAX_BACKOFF_MS,
      process: async (did, job) => {
        const effects = await this.events.process(did, job.event)
        this.finish(job, effects)
        // The reader may be waiting for frames: what just finished must not wait for it.
        this.kick()
      },
      onPark: (did, err, attempt, retryInMs) => {
        const reason = err instanceof TransientError ? err.reason : 'internal-error'
        bump(this.status.retries, reason)
        // A first sight of an account's key is routine; failures that repeat are not.
        const loud = reason !== 'identity-pending' && (attempt === 1 || attempt % 10 === 0)
        const log = loud ? this.opts.log.warn.bind(this.opts.log) : this.opts.log.debug.bind(this.opts.log)
        log({ did, reason, err: (err as Error).message, attempt, retryInMs }, 'repo parked; its events wait')
      },
      onOverflow: (did, jobs, reason) => {
        const effects: Effect[] = []
        this.events.resync(did, `${jobs.length} events handed to a resync: ${reason}`, effects)
        // The resync request lands in the batch before the cursor can pass the events it covers.
        for (const e of effects) this.checkpoint.push(e)
        for (const job of jobs) if (job.mark) this.checkpoint.marks.close(job.mark)
      },
    })
    this.router = new Router({ states: this.states, queues: this.queues, checkpoint: this.checkpoint, keys: this.keys })
  }

  /** Resolves once the stored cursor is read and the subscription is opening. */
  async start(): Promise<void> {
    // Restartable: a replica that regains leadership resumes from the committed cursor.
    this.stopping = false
    this.queues.reset()
    const jet = this.opts.jetstream
    // Positions are read again from Postgres: the last signed ones, whoever wrote them.
    await this.states.load()
    const { stored, from } = await resumePoint({
      pool: this.opts.pool,
      relayUrl: this.opts.relayUrl,
      jetstream: jet !== undefined,
      startCursor: this.opts.startCursor,
      backfillOnGap: this.opts.backfillOnGap,
      log: this.opts.log,
      problem: (name, message) => this.problem(name, message),
      onBackfillRequested: this.opts.onBackfillRequested,
    })
    this.lastSeq = from
    this.checkpoint.reset(stored, from)
    this.relay = openSource({
      relayUrl: this.opts.relayUrl,
      jetstream: jet,
      getCursor: () => this.lastSeq,
      onCursorTooOld: (reason) => {
        // Live from now (pinned, as at start); what the instances no longer hold comes from a full backfill.
        this.lastSeq = Date.now() * 1000
        this.problem('CursorTooOld', reason)
        this.gap(`Jetstream cannot resume our cursor: ${reason}`)
      },
      log: this.opts.log,
      idleTimeoutMs: this.opts.relayIdleTimeoutMs,
      maxBackoffMs: this.opts.relayMaxBackoffMs,
    })
    this.byteRate.reset()
    this.relay.start()
    this.reconciler?.start()
    this.sweeper = setInterval(() => this.sweep(), 1000)
    this.done = this.loop()
  }

  /** Stops reading, lets running work finish, commits what finished, and resolves when the cursor is saved. */
  async stop(): Promise<void> {
    this.stopping = true
    if (this.sweeper) clearInterval(this.sweeper)
    this.relay?.stop()
    await this.reconciler?.stop()
    await this.done
  }

  private async loop(): Promise<void> {
    const relay = this.relay
    if (!relay) return
    while (!this.stopping) {
      let frame: Uint8Array | null | undefined = relay.take() ?? (await relay.next(CURSOR_INTERVAL_MS))
      for (let n = 0; frame && n < SLICE; n++) {
        this.intake(frame)
        frame = n + 1 < SLICE ? relay.take() : undefined
      }
      if (frame) this.intake(frame)
      this.checkpoint.maybeCommit(this.drained())
      // Back-pressure: processing behind, or the database. The socket pauses meanwhile.
      if (this.queues.activeBytes > READ_AHEAD_BYTES) await this.queues.room(READ_AHEAD_BYTES / 2)
      while (!this.stopping && this.checkpoint.failures > 0 && this.checkpoint.size > 10 * MAX_BATCH) {
        await new Promise((r) => setTimeout(r, 50))
      }
      await immediate()
    }
    this.queues.stop()
    await this.queues.idle()
    await this.checkUnsigned()
    await this.checkpoint.flush(5_000)
  }

  /**
   * Nothing read is waiting to be processed. Repos that are running may be waiting on the
   * network (a DID document that hangs) and parked ones for minutes: neither holds back what
   * other repos finished; each job that finishes asks for a commit check of its own.
   */
  private drained(): boolean {
    return (this.relay?.buffered ?? 0) === 0 && this.queues.waiting === 0
  }

  private kickPending = false
  /** A commit check once the current burst of work settles. */
  private kick(): void {
    if (this.kickPending || this.stopping) return
    this.kickPending = true
    setImmediate(() => {
      this.kickPending = false
      if (!this.stopping) this.checkpoint.maybeCommit(this.drained())
    })
  }

  private sweep(): void {
    this.byteRate.sample(this.relay?.status.bytesReceived ?? 0)
    this.queues.sweep()
    // Deferred signature checks ride in their repo's queue, after the commits they cover.
    for (const did of this.states.takeUnchecked()) this.queues.push(did, { event: { type: 'signature-check' }, mark: null, bytes: 0 })
  }

  /**
   * At stop, with no job running: the tips still unchecked are checked now, so that their signed
   * positions are committed with the last batch (a next leader would otherwise find the repos'
   * next commits continuing a root it does not hold, and resync them).
   */
  private async checkUnsigned(): Promise<void> {
    for (const did of this.states.takeUnchecked()) {
      try {
        for (const e of await this.events.process(did, { type: 'signature-check' })) this.checkpoint.push(e)
      } catch (err) {
        this.opts.log.debug({ did, err: (err as Error).message }, 'deferred signature check left to the next start')
      }
    }
  }

  snapshotStatus(): IndexerStatus {
    const r = this.relay?.status
    const bytesPerSecond = this.byteRate.perSecond(r?.bytesReceived ?? 0)
    return {
      ...this.status,
      sourceUrl: r?.url ?? null,
      jetstreamVersion: this.relay instanceof JetstreamSubscription && r?.connected ? this.relay.version : null,
      bytesReceived: r?.bytesReceived ?? 0,
      bytesPerSecond,
      proofs: this.proofs ? { ...this.proofs.counts, outcomes: { ...this.proofs.counts.outcomes } } : null,
      reconcile: this.reconciler ? { ...this.reconciler.status } : null,
      connected: r?.connected ?? false,
      reconnects: r?.reconnects ?? 0,
      stalls: r?.stalls ?? 0,
      lastDisconnectReason: r?.lastDisconnectReason ?? null,
      nextRetryInMs: r?.nextRetryInMs ?? null,
      lastSeq: this.lastSeq,
      parkedRepos: this.queues.parked,
      queuedEvents: this.queues.jobs,
      queuedBytes: this.queues.bytes,
      verification: this.opts.verifier?.status ?? null,
    }
  }

  /** A repo synced from its PDS by this process: its position in memory is the snapshot's, if newer. */
  trackRepo(did: string, rev: string, dataCid: string): void {
    this.states.resyncDone(did, rev, dataCid)
  }

  private finish(job: Job, effects: Effect[]): void {
    for (const e of effects) this.checkpoint.push(e)
    if (job.mark) this.checkpoint.marks.close(job.mark)
  }

  private intake(frame: Uint8Array): void {
    this.status.framesReceived++
    const source = this.relay
    const msg = source instanceof JetstreamSubscription ? readJetstreamFrame(frame, source.version, this.lastSeq) : readFirehoseFrame(frame)
    switch (msg.type) {
      case 'event':
        this.lastSeq = msg.event.seq
        if (msg.event.type === 'commit' || msg.event.type === 'jetstream-commit') this.status.lastEventTime = msg.time
        return this.router.route(msg.event, msg.bytes)
      case 'pass':
        return this.pass(msg.seq)
      case 'malformed':
        bump(this.status.malformed, msg.reason)
        this.opts.log.warn({ reason: msg.reason, seq: msg.seq, err: msg.message }, 'malformed frame skipped')
        return this.pass(msg.seq)
      case 'problem':
        this.problem(msg.name, msg.message)
        if (msg.name === 'OutdatedCursor') this.gap('the relay no longer holds events since our cursor')
        if (msg.name === 'FutureCursor') {
          // The relay does not know our cursor (a reset or another relay): go live, backfill the rest.
          this.lastSeq = null
          this.gap('the relay reported our cursor in its future')
        }
        if (msg.fatal && source instanceof JetstreamSubscription) source.reportError(msg.name, msg.message)
        return
    }
  }

  /** A position with nothing to do. */
  private pass(seq: number | undefined): void {
    if (seq === undefined) return
    this.lastSeq = seq
    this.checkpoint.marks.seen(seq)
  }

  private problem(name: string, message: string | undefined): void {
    recordProblem(this.status, name, message)
    this.opts.log.error({ name, message, relay: this.opts.relayUrl }, 'relay reported a stream problem')
  }

  private gap(reason: string): void {
    if (!this.opts.backfillOnGap) return
    this.opts.log.warn({ reason }, 'gap in the stream; full backfill requested')
    this.checkpoint.push({ kind: 'gap', reason })
  }
}
