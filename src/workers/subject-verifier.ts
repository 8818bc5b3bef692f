import type { IdResolver } from '@atproto/identity'
import { resolvePds, signingKeys } from '../atproto/identity.ts'
import { AtUri } from '@atproto/syntax'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { claimJobs, dropJob, recordProof, recordRetry, type VerifierStatus, type VerifyJob } from '../db/verification.ts'
import type { SigningKeys } from '../atproto/identity.ts'
import type { Fetch } from '../atproto/host.ts'
import type { Config } from '../config.ts'
import { proveSubject } from '../atproto/record-proof.ts'
import { KeyedLimiter } from '../lib/limits.ts'
import { QueueWorker, asTransient } from './queue-worker.ts'
import { retryDelay } from '../lib/backoff.ts'
import { bump } from '../lib/counts.ts'
import { FencedError } from '../db/fence.ts'

/** The verification settings of the configuration (src/config.ts documents and defaults each). */
export interface VerifierOptions extends Pick<Config['verify'], 'concurrency' | 'perHost' | 'maxAttempts' | 'backoffBaseMs' | 'backoffMaxMs' | 'leaseMs' | 'pollMs'> {
  pool: Pool
  idResolver: IdResolver
  log: Logger
  /** An HTTP client with a timeout, a response size cap and the address policy applied. */
  fetch: Fetch
}


/**
 * Proves invite subjects that the stream could not vouch for, from the inviter's own repo.
 * Works from the queue in Postgres beside the ingest loop, never inside it: a slow or absent
 * PDS delays only its own invites.
 */
export class SubjectVerifier extends QueueWorker {
  readonly status: VerifierStatus = { outcomes: {}, retries: {}, gaveUp: 0, inFlight: 0 }
  private readonly opts: Required<VerifierOptions>
  private readonly keys: SigningKeys
  private readonly hosts: KeyedLimiter

  constructor(opts: VerifierOptions) {
    super(opts.pollMs, opts.log)
    // Every value comes from the configuration (see build.ts), which states the defaults.
    this.opts = opts
    this.keys = signingKeys(this.opts.idResolver)
    this.hosts = new KeyedLimiter(this.opts.perHost)
  }

  protected override inFlightChanged(count: number): void {
    this.status.inFlight = count
  }

  protected async step(): Promise<boolean> {
    const free = this.opts.concurrency - this.running.size
    if (free <= 0) return false
    const jobs = await claimJobs(this.opts.pool, free, this.opts.leaseMs)
    for (const job of jobs) this.track(this.run(job))
    return jobs.length > 0 && jobs.length === free
  }

  private async run(job: VerifyJob): Promise<void> {
    const { pool, log } = this.opts
    try {
      if (!job.invite) {
        await dropJob(pool, job)
        return
      }
      const invite = job.invite
      const subject = new AtUri(invite.subjectUri)
      const pds = await resolvePds(this.opts.idResolver, invite.inviter)
      const currentCid = await this.hosts.run(new URL(pds).host, () =>
        proveSubject(this.opts.fetch, { pds, did: invite.inviter, collection: subject.collection, rkey: subject.rkey }, this.keys),
      )
      const decision = await recordProof(pool, { ...job, invite }, {
        repo: invite.inviter,
        collection: subject.collection,
        currentCid,
      })
      bump(this.status.outcomes, decision.state)
      log.info({ invite: job.inviteUri, outcome: decision.state, reason: decision.reason }, 'invite subject verified')
    } catch (err) {
      // Another replica leads: the job is its own now, and this worker is being stopped.
      if (err instanceof FencedError) return
      const transient = asTransient(err)
      if (transient.reason === 'internal-error') log.error({ err, invite: job.inviteUri }, 'verification failed unexpectedly')
      bump(this.status.retries, transient.reason)
      try {
        const delay = retryDelay(job.attempts + 1, this.opts.backoffBaseMs, this.opts.backoffMaxMs, transient.retryAfterMs)
        const next = await recordRetry(pool, job, `${transient.reason}: ${transient.message}`, delay, this.opts.maxAttempts)
        if (next === 'gave-up') this.status.gaveUp++
        log.warn(
          { invite: job.inviteUri, reason: transient.reason, err: transient.message, attempt: job.attempts + 1, next, retryInMs: delay },
          'invite subject not verified yet',
        )
      } catch (dbErr) {
        // The lease expires and the job comes back by itself.
        log.error({ err: dbErr, invite: job.inviteUri }, 'could not schedule a verification retry')
      }
    }
  }
}
