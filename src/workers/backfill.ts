import type { IdResolver } from '@atproto/identity'
import { resolvePds, signingKeys } from '../atproto/identity.ts'
import type { Lexicons } from '@atproto/lexicon'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { activeRuns, addDiscovered, claimRepos, closeFinishedRuns, discoveryFailed, finishDiscovery, heldRecords, saveDiscovery, type BackfillRun } from '../db/backfill.ts'
import type { RepoJob } from '../db/repo-state.ts'
import { applyEffects } from '../db/store.ts'
import { fencedTransaction } from '../db/fence.ts'
import { resyncs } from '../pipeline/repo-state.ts'
import type { SigningKeys } from '../atproto/identity.ts'
import { discoverPage } from './discovery.ts'
import { KeyedLimiter, KeyedRateLimiter } from '../lib/limits.ts'
import { snapshotRepo, SnapshotVerdict } from './snapshot.ts'
import { QueueWorker, asTransient } from './queue-worker.ts'
import { backoff, retryDelay } from '../lib/backoff.ts'
import type { Fetch } from '../atproto/host.ts'
import type { Config } from '../config.ts'
import { bump } from '../lib/counts.ts'

/** The backfill settings of the configuration (src/config.ts documents and defaults each). */
type BackfillSettings = Pick<
  Config['backfill'],
  'concurrency' | 'perHost' | 'ratePerHost' | 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs' | 'leaseMs' | 'pollMs' | 'discoveryBackoffMs' | 'discoveryMaxBackoffMs'
>

export interface BackfillOptions extends BackfillSettings {
  pool: Pool
  idResolver: IdResolver
  lexicons: Lexicons
  log: Logger
  /** HTTP client for PDS hosts (DID documents name them): bounded, address policy applied. */
  fetch: Fetch
  /** Relay (or PDS) base URL for discovery, http(s)://. */
  discoveryUrl: string
  /** Told after each repo is synced: its new chain position and how many of our records it held. */
  onRepo?: (did: string, rev: string, dataCid: string, records: number) => void
  /** Told when records were queued for subject proofs. */
  onQueued?: () => void
}

export interface BackfillStatus {
  reposSynced: number
  /** Syncs ended by a verdict (the repo gone from its host, or not verifying): never by a transient failure. */
  reposFailed: number
  /** Repos that used their run's attempts and went on as resyncs of their own. */
  reposLeftRun: number
  records: number
  retries: Record<string, number>
  inFlight: number
  /** Discovery pages that failed in a row (0 once one is read). */
  discoveryFailures: number
}

/**
 * Discovers the repos that hold our collections and syncs each one from its PDS, from queues in
 * Postgres: a crash or restart resumes where it stopped, and several processes can share the work.
 * Resyncs of single repos (sync 1.1 breaks) go through the same queue.
 */
export class Backfiller extends QueueWorker {
  readonly status: BackfillStatus = { reposSynced: 0, reposFailed: 0, reposLeftRun: 0, records: 0, retries: {}, inFlight: 0, discoveryFailures: 0 }
  private readonly opts: Required<Omit<BackfillOptions, 'onRepo' | 'onQueued'>> & Pick<BackfillOptions, 'onRepo' | 'onQueued'>
  private readonly keys: SigningKeys
  private readonly hosts: KeyedLimiter
  private readonly rates: KeyedRateLimiter
  /** The discovery page being read, if any. */
  private discovery: Promise<void> | null = null
  /** No discovery page is asked for before this (epoch ms): the backoff after failures. */
  private discoveryNotBefore = 0

  constructor(opts: BackfillOptions) {
    super(opts.pollMs, opts.log)
    // Every value comes from the configuration (see build.ts), which states the defaults.
    this.opts = opts
    this.keys = signingKeys(this.opts.idResolver)
    this.hosts = new KeyedLimiter(this.opts.perHost)
    this.rates = new KeyedRateLimiter(this.opts.ratePerHost)
  }

  protected override inFlightChanged(count: number): void {
    this.status.inFlight = count
  }

  /** One round of work; true when there may be more right away. */
  protected async step(): Promise<boolean> {
    const runs = await activeRuns(this.opts.pool)
    const discovering = runs.find((r) => r.status === 'discovering')
    // A discovery page may take long (a PDS without listReposByCollection is asked repo by
    // repo): it runs as a task of its own, so repos keep being claimed meanwhile.
    // While backing off, the worker's poll (every pollMs) comes back here until the time is up:
    // no task sleeps, so stopping never waits for a backoff.
    if (discovering && !this.discovery && Date.now() >= this.discoveryNotBefore) {
      this.discovery = this.discoverOnePage(discovering).then(() => {
        this.discovery = null
      })
      this.track(this.discovery)
    }
    // Repo syncs in flight, the discovery task aside.
    const free = this.opts.concurrency - this.running.size + (this.discovery ? 1 : 0)
    let claimed = 0
    if (free > 0) {
      const jobs = await fencedTransaction(this.opts.pool, (client) => claimRepos(client, free, this.opts.leaseMs))
      claimed = jobs.length
      for (const job of jobs) this.track(this.syncRepo(job))
    }
    if (runs.some((r) => r.status === 'syncing')) {
      for (const id of await closeFinishedRuns(this.opts.pool)) this.opts.log.info({ run: id }, 'backfill finished')
    }
    return claimed > 0 && claimed === free
  }

  private async discoverOnePage(run: BackfillRun): Promise<void> {
    try {
      const page = await discoverPage(this.opts.discoveryUrl, run.discovery)
      // The leader's writes to the sync queue commit only under its epoch, as its batches do.
      await fencedTransaction(this.opts.pool, async (client) => {
        await addDiscovered(client, run.id, page.dids, run.reason)
        await saveDiscovery(client, run.id, page.progress)
        if (page.done) await finishDiscovery(client, run.id)
      })
      if (this.status.discoveryFailures > 0) this.opts.log.info({ run: run.id, url: this.opts.discoveryUrl }, 'backfill discovery recovered')
      this.status.discoveryFailures = 0
      this.discoveryNotBefore = 0
      if (page.done) this.opts.log.info({ run: run.id }, 'backfill discovery finished')
    } catch (err) {
      await this.discoveryFailed(run, (err as Error).message)
    }
  }

  /**
   * A relay that is down is asked again after a capped, jittered exponential backoff (not every
   * second, which floods the log and the relay); the reason and next attempt go to Postgres for
   * every replica's health endpoint.
   */
  private async discoveryFailed(run: BackfillRun, message: string): Promise<void> {
    const failures = ++this.status.discoveryFailures
    const delay = backoff(failures, this.opts.discoveryBackoffMs, this.opts.discoveryMaxBackoffMs)
    this.discoveryNotBefore = Date.now() + delay
    const error = message.includes(this.opts.discoveryUrl.replace(/\/$/, '')) ? message : `${this.opts.discoveryUrl}: ${message}`
    this.opts.log.warn({ run: run.id, url: this.opts.discoveryUrl, err: error, failures, retryInMs: delay }, `backfill discovery failed: ${error}; retrying in ${delay < 1000 ? `${delay} ms` : `${Math.round(delay / 1000)} s`}`)
    try {
      await discoveryFailed(this.opts.pool, run.id, error, failures, delay)
    } catch (dbErr) {
      this.opts.log.error({ err: dbErr, run: run.id }, 'could not record the backfill discovery failure')
    }
  }

  private async syncRepo(job: RepoJob): Promise<void> {
    const { pool, log } = this.opts
    let host = ''
    try {
      const pds = await resolvePds(this.opts.idResolver, job.did)
      host = new URL(pds).host
      const held = await heldRecords(pool, job.did)
      const snapshot = await this.hosts.run(host, async () => {
        await this.rates.take(host)
        return snapshotRepo(this.opts.fetch, pds, job.did, this.keys, this.opts.lexicons, held)
      })
      let current = true
      const res = await applyEffects(pool, snapshot.effects, async (client) => {
        // Asked for again while this sync ran: the snapshot's records stand (rev-guarded), but
        // the repo is not declared synced; it stays queued and is fetched again.
        current = await resyncs.done(client, job, snapshot.records, snapshot.rev, snapshot.dataCid)
      })
      if (res.queued > 0) this.opts.onQueued?.()
      this.status.reposSynced++
      this.status.records += snapshot.records
      if (current) this.opts.onRepo?.(job.did, snapshot.rev, snapshot.dataCid, snapshot.records)
      else this.wake()
      log.debug({ did: job.did, rev: snapshot.rev, records: snapshot.records, current }, 'repo synced')
    } catch (err) {
      if (err instanceof SnapshotVerdict) return this.ended(job, err)
      const transient = asTransient(err)
      if (transient.reason === 'internal-error') log.error({ err, did: job.did }, 'repo sync failed unexpectedly')
      bump(this.status.retries, transient.reason)
      if (transient.retryAfterMs !== undefined && host) this.rates.pause(host, transient.retryAfterMs)
      const delay = retryDelay(job.attempts + 1, this.opts.backoffBaseMs, this.opts.backoffMaxMs, transient.retryAfterMs)
      try {
        const error = `${transient.reason}: ${transient.message}`
        const left = await fencedTransaction(pool, (client) => resyncs.retry(client, job, error, delay, this.opts.maxAttempts))
        if (left) this.status.reposLeftRun++
        // Loud on the first failure and every tenth: a host down for days retries for days.
        const loud = job.attempts === 0 || left || (job.attempts + 1) % 10 === 0
        const next = left ? 'left its run; retried as a resync' : 'retry'
        ;(loud ? log.warn : log.debug).call(log, { did: job.did, reason: transient.reason, err: transient.message, attempt: job.attempts + 1, next, retryInMs: delay }, 'repo sync failed')
      } catch (dbErr) {
        log.error({ err: dbErr, did: job.did }, 'could not schedule a repo sync retry')
      }
    }
  }

  /** A verdict ends the sync: nothing is retried, and the repo's chain is followed afresh. */
  private async ended(job: RepoJob, verdict: SnapshotVerdict): Promise<void> {
    const detail = `${verdict.reason}: ${verdict.message}`
    try {
      const current = await fencedTransaction(this.opts.pool, (client) => resyncs.end(client, job, detail))
      if (current) this.status.reposFailed++
      else this.wake()
      this.opts.log.warn({ did: job.did, verdict: detail, current }, 'repo sync ended by a verdict')
    } catch (dbErr) {
      this.opts.log.error({ err: dbErr, did: job.did }, 'could not record a repo sync verdict')
    }
  }
}
