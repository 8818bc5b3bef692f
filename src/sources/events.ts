/**
 * The one event union of the pipeline: what a source (the relay's firehose, Jetstream) hands on
 * for one repo, whichever source it came from, plus the pipeline's own deferred signature check.
 * Everything after the sources speaks these types only.
 */
import type { CidLinkWrapper } from '@atcute/cbor'
import type { Cid } from '@atproto/lex-data'
import type { RepoOp } from '../atproto/chain.ts'

export type { RepoOp }

export interface CommitEvent {
  type: 'commit'
  seq: number
  repo: string
  rev: string
  since: string | null
  /** The MST root before this commit (sync 1.1); null from older PDS software. */
  prevData: string | null
  commit: Cid
  /** The commit CID as sent, undecoded. */
  commitLink: CidLinkWrapper
  blocks: Uint8Array
  ops: RepoOp[]
  time: string
}

export interface SyncEvent {
  type: 'sync'
  seq: number
  did: string
  rev: string
  blocks: Uint8Array
}

export interface IdentityEvent {
  type: 'identity'
  seq: number
  did: string
}

export interface AccountEvent {
  type: 'account'
  seq: number
  did: string
  active: boolean
  status: string | undefined
}

/** A deferred signature check of a tracked repo's latest commit. */
export interface SignatureCheck {
  type: 'signature-check'
}

/** A Jetstream commit event: a claim of one op, proven from the repo's host before it counts. */
/** What a Jetstream commit event claims about one record (nothing of it is trusted unproven). */
export interface JetstreamClaim {
  did: string
  rev: string
  operation: 'create' | 'update' | 'delete'
  collection: string
  rkey: string
  /** The record's CID as the event claims it; null for deletes. */
  cid: string | null
  /** The record as the event claims it (ATProto JSON), undefined for deletes or when absent. */
  record: unknown
}

export interface JetstreamCommitEvent extends JetstreamClaim {
  type: 'jetstream-commit'
  /** The event's stream position (its time_us, never below an earlier one's). */
  seq: number
  /** Not from the stream: a record the host lists differently from what the index holds. */
  reconcile?: boolean
}

/** A Jetstream account event of a repo we track: applied as its host states it. */
export interface JetstreamAccountEvent {
  type: 'jetstream-account'
  seq: number
  did: string
  active: boolean
  status: string | undefined
}

/** Jetstream v2's `#sync`: the repo was reset; a repo we hold records of is resynced. */
export interface JetstreamSyncEvent {
  type: 'jetstream-sync'
  seq: number
  did: string
  rev: string
}

export type RepoEvent =
  | CommitEvent
  | SyncEvent
  | IdentityEvent
  | AccountEvent
  | SignatureCheck
  | JetstreamCommitEvent
  | JetstreamAccountEvent
  | JetstreamSyncEvent

/** A repo event as a source hands it on: each carries its stream position. */
export type StreamEvent = Exclude<RepoEvent, SignatureCheck>

/**
 * What one frame of a source is, whichever the source: an event of one repo, a condition the
 * stream reports, a position to pass, or a frame that cannot be read. `seq` is the stream
 * position (a relay's seq, Jetstream's time_us never below an earlier one's); absent, the frame
 * moves no position.
 */
export type StreamMessage =
  | { type: 'event'; event: StreamEvent; bytes: number; time: string | null }
  | { type: 'problem'; name: string; message: string | undefined; fatal: boolean }
  | { type: 'pass'; seq: number | undefined }
  | { type: 'malformed'; reason: string; message: string; seq: number | undefined }
