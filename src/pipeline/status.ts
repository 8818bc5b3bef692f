/**
 * What the ingester reports about itself: stored with each checkpoint for every replica's
 * `_health`, read by `/metrics` and the dashboard. Counters only; nothing here drives ingest.
 */
import type { VerifierStatus } from '../db/verification.ts'
import type { ProofCounts } from '../atproto/record-proof.ts'
import type { ReconcileStatus } from './reconcile.ts'

/** A stream condition worth an operator's attention (OutdatedCursor, FutureCursor, ...). */
export interface StreamProblem {
  name: string
  message: string | undefined
  at: string
  count: number
}

export interface IndexerStatus {
  /** Where events come from: a relay's firehose, or Jetstream with a proof of every record. */
  mode: 'firehose' | 'jetstream'
  relay: string
  /** The instance of the current (or last) connection, and its protocol (Jetstream mode). */
  sourceUrl: string | null
  jetstreamVersion: string | null
  /** Bytes received from the source, in all and per second over the last ten seconds. */
  bytesReceived: number
  bytesPerSecond: number
  /** Jetstream mode: record proofs being fetched, and how the settled ones came out. */
  proofs: ProofCounts | null
  /** Jetstream mode: tracked repos compared with their hosts, records that differed. */
  reconcile: ReconcileStatus | null
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
  /** Transient failures that parked a repo, by reason; and repos parked now. */
  retries: Record<string, number>
  parkedRepos: number
  /** Events waiting in repo queues, and their bytes. */
  queuedEvents: number
  queuedBytes: number
  /** Commits whose signature check was deferred to their repo's latest (sync 1.1 chain). */
  deferredSignatures: number
  startedAt: string
  verification: VerifierStatus | null
}

export const initialStatus = (mode: IndexerStatus['mode'], relay: string): IndexerStatus => ({
  mode,
  relay,
  sourceUrl: null,
  jetstreamVersion: null,
  bytesReceived: 0,
  bytesPerSecond: 0,
  proofs: null,
  reconcile: null,
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
  retries: {},
  parkedRepos: 0,
  queuedEvents: 0,
  queuedBytes: 0,
  deferredSignatures: 0,
  startedAt: new Date().toISOString(),
  verification: null,
})

export const recordProblem = (status: IndexerStatus, name: string, message: string | undefined): void => {
  const prev = status.problems[name]
  status.problems[name] = { name, message, at: new Date().toISOString(), count: (prev?.count ?? 0) + 1 }
}

/** Bytes received per second over the last ten seconds, from one sample a second. */
export class ByteRate {
  private samples: [number, number][] = []

  reset(): void {
    this.samples = [[Date.now(), 0]]
  }

  sample(bytesReceived: number): void {
    this.samples.push([Date.now(), bytesReceived])
    if (this.samples.length > 11) this.samples.shift()
  }

  /** From the oldest sample (up to ten seconds back) to now, so a burst counts at once. */
  perSecond(bytesReceived: number): number {
    const first = this.samples[0]
    const now = Date.now()
    return first && now > first[0] ? Math.round(((bytesReceived - first[1]) * 1000) / (now - first[0])) : 0
  }
}
