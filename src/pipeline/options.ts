/** What the ingester is given: its database, its source, its bounds, whom it tells. */
import type { IdResolver } from '@atproto/identity'
import type { Lexicons } from '@atproto/lexicon'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import type { VerifierStatus } from '../db/verification.ts'
import type { Fetch } from '../atproto/host.ts'

/** The configured bounds of per-repo processing (src/config.ts states their defaults). */
export interface IngestLimits {
  /** Repos processed at once. */
  concurrency: number
  /** Bytes of events all repo queues may hold; the reader waits past it. */
  maxQueuedBytes: number
  /** Longest a repo stays parked before it is handed to a resync. */
  maxParkMs: number
}

export interface IndexerOptions {
  pool: Pool
  relayUrl: string
  /** Seq to start from when no cursor is stored for this relay; undefined: live tail. */
  startCursor: number | undefined
  lexicons: Lexicons
  idResolver: IdResolver
  log: Logger
  /** Told when invites were queued for a subject proof; its counters join the status. */
  verifier?: { wake(): void; readonly status: VerifierStatus } | undefined
  /** Schedule a full backfill when events may have been missed (first start, relay change, gaps). */
  backfillOnGap: boolean
  /** Told when a backfill or resync was requested. */
  onBackfillRequested?: () => void
  /** Reopen a relay connection that sends nothing for this long. */
  relayIdleTimeoutMs: number
  relayMaxBackoffMs: number
  limits: IngestLimits
  /**
   * Read Jetstream instead of a relay's firehose: every commit event is proven from its repo's
   * host before it counts. `relayUrl` is then the key the cursor is stored under.
   */
  jetstream?: JetstreamSource | undefined
}

export interface JetstreamSource {
  urls: string[]
  /** How far before the cursor every connection resumes. */
  rewindMs: number
  /** How long the instances keep events: an older cursor is a gap. */
  retentionMs: number
  /** Every tracked repo is compared with its host's listing once in this period; 0: never. */
  reconcileMs: number
  /** The HTTP client for hosts' record proofs (timeouts, size cap, address policy). */
  fetch: Fetch
}
