import type { IdResolver } from '@atproto/identity'
import type { Lexicons } from '@atproto/lexicon'
import type { Config } from '../config.ts'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { createProofFetch } from '../atproto/identity.ts'
import { Backfiller, type BackfillOptions } from './backfill.ts'
import { SubjectVerifier } from './subject-verifier.ts'

export interface WorkerDeps {
  pool: Pool
  idResolver: IdResolver
  lexicons: Lexicons
  log: Logger
}

/** The subject-proof worker as configured; the service and the backfill CLI run the same one. */
export const createVerifier = (config: Config, deps: WorkerDeps): SubjectVerifier =>
  new SubjectVerifier({
    pool: deps.pool,
    idResolver: deps.idResolver,
    log: deps.log.child({ component: 'verify' }),
    fetch: createProofFetch({
      allowPrivateNetwork: config.allowPrivateNetwork,
      timeoutMs: config.verify.timeoutMs,
      maxBytes: config.verify.maxBytes,
    }),
    concurrency: config.verify.concurrency,
    perHost: config.verify.perHost,
    maxAttempts: config.verify.maxAttempts,
    backoffBaseMs: config.verify.backoffBaseMs,
  })

/** The backfill/resync worker as configured, with call-site hooks and overrides. */
export const createBackfiller = (
  config: Config,
  deps: WorkerDeps,
  extra: Partial<Pick<BackfillOptions, 'onRepo' | 'onQueued' | 'concurrency' | 'perHost' | 'ratePerHost'>>,
): Backfiller =>
  new Backfiller({
    pool: deps.pool,
    idResolver: deps.idResolver,
    lexicons: deps.lexicons,
    log: deps.log.child({ component: 'backfill' }),
    // Whole repos: a longer timeout and a larger cap than single-record proofs.
    fetch: createProofFetch({ allowPrivateNetwork: config.allowPrivateNetwork, timeoutMs: 60_000, maxBytes: config.backfill.maxBytes }),
    discoveryUrl: config.backfill.url,
    concurrency: extra.concurrency ?? config.backfill.concurrency,
    perHost: extra.perHost ?? config.backfill.perHost,
    ratePerHost: extra.ratePerHost ?? config.backfill.ratePerHost,
    maxAttempts: config.backfill.maxAttempts,
    backoffBaseMs: config.backfill.backoffBaseMs,
    backoffMaxMs: config.backfill.backoffMaxMs,
    onRepo: extra.onRepo,
    onQueued: extra.onQueued,
  })
