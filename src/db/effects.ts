/** What the ingester asks the database to do, in relay order. */

export const INVITE_NSID = 'pub.chive.collaboration.invite'
export const ACCEPTANCE_NSID = 'pub.chive.collaboration.inviteAcceptance'
export type Collection = typeof INVITE_NSID | typeof ACCEPTANCE_NSID
export const OUR_COLLECTIONS: ReadonlySet<string> = new Set([INVITE_NSID, ACCEPTANCE_NSID])
/** Every Chive record is a possible invite subject: its versions and deletion are tracked. */
export const CHIVE_PREFIX = 'pub.chive.'

interface RecordRef {
  uri: string
  repo: string
  rev: string
  /** The relay seq it came with; null when it came from a repo snapshot (backfill, resync). */
  seq: number | null
}

export interface InviteWrite extends RecordRef {
  kind: 'invite'
  cid: string
  subjectUri: string
  subjectCid: string
  subjectCollection: string
  invitee: string
  role: string | undefined
  message: string | undefined
  createdAt: Date
  expiresAt: Date | undefined
}

export interface AcceptanceWrite extends RecordRef {
  kind: 'acceptance'
  cid: string
  inviteUri: string
  inviteCid: string | null
  subjectUri: string
  subjectCid: string | null
  lenient: boolean
  createdAt: Date
}

/** A Chive record (pub.chive.*) outside our collections: a possible invite subject. */
export interface SubjectWrite extends RecordRef {
  kind: 'subject'
  collection: string
  action: 'create' | 'update' | 'delete'
  /** null for a delete. */
  cid: string | null
}

export interface RecordDelete extends RecordRef {
  kind: 'delete'
  collection: Collection
}

/**
 * A record we will not serve. With `rev` set it is a verified version of the record that
 * supersedes any earlier valid one; without, the event itself could not be trusted.
 */
export interface Rejection {
  kind: 'rejection'
  uri: string | undefined
  collection: string | undefined
  repo: string | undefined
  rev: string | undefined
  cid: string | undefined
  seq: number | null | undefined
  reason: string
  detail: string | undefined
  record: unknown
}

export interface AccountStatus {
  kind: 'account'
  did: string
  active: boolean
  status: string | undefined
  seq: number
}

/** A DID's identity changed (a PDS move, a key rotation): its stalled proofs get another try. */
export interface IdentityChange {
  kind: 'identity'
  did: string
  seq: number
}

/** A tracked repo's chain moved to this signed commit (sync 1.1 position). */
export interface RepoPosition {
  kind: 'repo'
  did: string
  rev: string
  dataCid: string | null
}

/** A tracked repo's stream no longer continues what we hold: resync it from its PDS. */
export interface ResyncRequest {
  kind: 'resync'
  did: string
  reason: string
}

/** Events were or may have been missed: the whole index needs a backfill. */
export interface GapDetected {
  kind: 'gap'
  reason: string
}

export type Effect =
  | InviteWrite
  | AcceptanceWrite
  | SubjectWrite
  | RecordDelete
  | Rejection
  | AccountStatus
  | IdentityChange
  | RepoPosition
  | ResyncRequest
  | GapDetected
