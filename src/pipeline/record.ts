import { AtUri } from '@atproto/syntax'
import type { Lexicons } from '@atproto/lexicon'
import { cborToLexRecord } from '@atproto/repo'
import { lexToJson } from '@atproto/lex-json'
import type { LexValue } from '@atproto/lex-data'
import { ACCEPTANCE_NSID, INVITE_NSID, type AcceptanceWrite, type Collection, type InviteWrite, type Rejection } from '../db/effects.ts'

/** Where a verified record came from. */
export interface RecordSource {
  uri: string
  repo: string
  collection: Collection
  rev: string
  seq: number | null
  cid: string
}

class RecordRejected extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

// Any CID in valid syntax: stands in for Chive's empty strongRef CIDs during validation only.
const PLACEHOLDER_CID = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm'

type Obj = Record<string, unknown>

/** Lexicon datetimes are RFC 3339, but a year like 0000 still breaks Date and Postgres. */
const toDate = (value: unknown, field: string): Date => {
  const d = new Date(String(value))
  const year = d.getUTCFullYear()
  if (Number.isNaN(d.getTime()) || year < 1 || year > 9999) {
    throw new RecordRejected('invalid-datetime', `${field} is not a usable datetime`)
  }
  return d
}

const parseUri = (value: string, field: string): AtUri => {
  try {
    return new AtUri(value)
  } catch {
    throw new RecordRejected('invalid-uri', `${field} is not an AT-URI`)
  }
}

const validate = (lex: Lexicons, nsid: string, record: Obj): void => {
  if (record.$type !== nsid) throw new RecordRejected('wrong-type', `$type is ${String(record.$type)}, not ${nsid}`)
  try {
    lex.assertValidRecord(nsid, record)
  } catch (err) {
    throw new RecordRejected('invalid-record', (err as Error).message)
  }
}

const toInvite = (lex: Lexicons, src: RecordSource, record: Obj): InviteWrite => {
  validate(lex, INVITE_NSID, record)
  const subject = record.subject as { uri: string; cid: string }
  const invitee = record.invitee as string
  const subjectUri = parseUri(subject.uri, 'subject.uri')
  // The invite lives in the subject author's repo: anything else is someone inviting
  // people onto a record that is not theirs.
  if (subjectUri.host !== src.repo) {
    throw new RecordRejected('subject-not-owned', `subject ${subject.uri} is not authored by the inviter ${src.repo}`)
  }
  if (!subjectUri.collection) throw new RecordRejected('invalid-uri', 'subject.uri names no record')
  if (invitee === src.repo) throw new RecordRejected('self-invite', 'an invite to oneself grants nothing')
  const createdAt = toDate(record.createdAt, 'createdAt')
  const expiresAt = record.expiresAt === undefined ? undefined : toDate(record.expiresAt, 'expiresAt')
  if (expiresAt && expiresAt.getTime() <= createdAt.getTime()) {
    throw new RecordRejected('expires-before-created', 'expiresAt is not after createdAt')
  }
  return {
    kind: 'invite',
    uri: src.uri,
    repo: src.repo,
    rev: src.rev,
    seq: src.seq,
    cid: src.cid,
    subjectUri: subject.uri,
    subjectCid: subject.cid,
    subjectCollection: subjectUri.collection,
    invitee,
    role: typeof record.role === 'string' ? record.role : undefined,
    message: typeof record.message === 'string' ? record.message : undefined,
    createdAt,
    expiresAt,
  }
}

const toAcceptance = (lex: Lexicons, src: RecordSource, record: Obj): AcceptanceWrite => {
  const invite = record.invite as Obj | undefined
  const subject = record.subject as Obj | undefined
  // Chive's frontend writes strongRefs with cid "": accepted, matched on URI, marked lenient.
  const emptyInviteCid = invite?.cid === ''
  const emptySubjectCid = subject?.cid === ''
  const forValidation =
    emptyInviteCid || emptySubjectCid
      ? {
          ...record,
          invite: emptyInviteCid ? { ...invite, cid: PLACEHOLDER_CID } : invite,
          subject: emptySubjectCid ? { ...subject, cid: PLACEHOLDER_CID } : subject,
        }
      : record
  validate(lex, ACCEPTANCE_NSID, forValidation)
  const inviteRef = record.invite as { uri: string; cid: string }
  const subjectRef = record.subject as { uri: string; cid: string }
  const inviteUri = parseUri(inviteRef.uri, 'invite.uri')
  if (inviteUri.collection !== INVITE_NSID || !inviteUri.rkey) {
    throw new RecordRejected('not-an-invite', `invite.uri ${inviteRef.uri} does not name a ${INVITE_NSID} record`)
  }
  parseUri(subjectRef.uri, 'subject.uri')
  return {
    kind: 'acceptance',
    uri: src.uri,
    repo: src.repo,
    rev: src.rev,
    seq: src.seq,
    cid: src.cid,
    inviteUri: inviteRef.uri,
    inviteCid: emptyInviteCid ? null : inviteRef.cid,
    subjectUri: subjectRef.uri,
    subjectCid: emptySubjectCid ? null : subjectRef.cid,
    lenient: emptyInviteCid || emptySubjectCid,
    createdAt: toDate(record.createdAt, 'createdAt'),
  }
}

const asJson = (record: unknown): unknown => {
  try {
    return lexToJson(record as LexValue)
  } catch {
    return null
  }
}

/**
 * Turns a verified record into the write it stands for, or into a rejection that
 * supersedes any earlier valid version of it.
 */
export const recordEffect = (
  lex: Lexicons,
  src: RecordSource,
  bytes: Uint8Array,
): InviteWrite | AcceptanceWrite | Rejection => {
  let record: Obj | undefined
  try {
    record = cborToLexRecord(bytes) as Obj
    return src.collection === INVITE_NSID ? toInvite(lex, src, record) : toAcceptance(lex, src, record)
  } catch (err) {
    const reason = err instanceof RecordRejected ? err.reason : 'undecodable-record'
    return {
      kind: 'rejection',
      uri: src.uri,
      collection: src.collection,
      repo: src.repo,
      rev: src.rev,
      cid: src.cid,
      seq: src.seq,
      reason,
      detail: (err as Error).message,
      record: record === undefined ? undefined : asJson(record),
    }
  }
}
