/**
 * Jetstream's JSON messages, v1 (`/subscribe`) and v2 (`network.bsky.jetstream.subscribeEvents`
 * over the `xrpc.v1.json` subprotocol), read into one shape. Nothing in them is signed: a commit
 * event is only a claim of what changed, to be proven from the repo's host (record-proof.ts).
 */
import { FrameError as JetstreamMessageError } from './firehose-frame.ts'
import type { JetstreamClaim, StreamMessage } from './events.ts'
import { MAX_FUTURE_MS } from '../atproto/rev.ts'

export type JetstreamVersion = 'v1' | 'v2'

export interface JetCommit extends JetstreamClaim {
  type: 'commit'
  /** Microseconds since the epoch, Jetstream's cursor (comparable across its instances). */
  timeUs: number
}

export interface JetIdentity {
  type: 'identity'
  timeUs: number
  did: string
}

export interface JetAccount {
  type: 'account'
  timeUs: number
  did: string
  active: boolean
  status: string | undefined
}

/** v2's `#sync`: the repo was reset to this rev (its events since cannot be trusted as a chain). */
export interface JetSync {
  type: 'sync'
  timeUs: number
  did: string
  rev: string
}

/** `#info` or an error message (`CursorTooOld`, `ConsumerTooSlow`, ...). */
export interface JetProblem {
  type: 'problem'
  name: string
  message: string | undefined
  /** An error ends the stream; an `#info` does not. */
  fatal: boolean
}

/** A message kind this service does not know; its time still moves the cursor. */
export interface JetOther {
  type: 'other'
  timeUs: number | undefined
}

export type JetstreamMessage = JetCommit | JetIdentity | JetAccount | JetSync | JetProblem | JetOther

/** A message that cannot be understood; its `seq` is the message's time_us when it had one. */
export { JetstreamMessageError }

const V2_PREFIX = 'network.bsky.jetstream.subscribeEvents#'
const OPERATIONS: ReadonlySet<string> = new Set(['create', 'update', 'delete'])

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 8192

/** `2026-08-17T12:00:00.123456Z` to microseconds, keeping the digits past the millisecond. */
const isoToMicros = (iso: string): number | undefined => {
  const ms = Date.parse(iso)
  if (Number.isNaN(ms)) return undefined
  const frac = /\.(\d+)/.exec(iso)?.[1] ?? ''
  const micros = Number((frac + '000000').slice(3, 6))
  return ms * 1000 + micros
}

const micros = (v: unknown): number | undefined => (typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : undefined)

const notAhead = (timeUs: number, nowMs: number): void => {
  if (timeUs > (nowMs + MAX_FUTURE_MS) * 1000) {
    throw new JetstreamMessageError('future-time', `time_us ${timeUs} is more than ${MAX_FUTURE_MS / 60_000} minutes ahead of this clock`)
  }
}

const readCommit = (did: string, timeUs: number, c: Obj): JetCommit => {
  const { rev, operation, collection, rkey, cid } = c
  if (!str(rev) || !str(collection) || !str(rkey) || typeof operation !== 'string' || !OPERATIONS.has(operation)) {
    throw new JetstreamMessageError('bad-commit', 'commit event lacks rev, operation, collection or rkey', timeUs)
  }
  if (operation !== 'delete' && !str(cid)) throw new JetstreamMessageError('bad-commit', `${operation} without a cid`, timeUs)
  const isDelete = operation === 'delete'
  return { type: 'commit', timeUs, did, rev, operation: operation as JetCommit['operation'], collection, rkey, cid: isDelete ? null : (cid as string), record: isDelete ? undefined : c.record }
}

const readAccount = (did: string, timeUs: number, a: Obj): JetAccount => {
  if (typeof a.active !== 'boolean') throw new JetstreamMessageError('bad-account', 'account event without active', timeUs)
  return { type: 'account', timeUs, did, active: a.active, status: typeof a.status === 'string' ? a.status : undefined }
}

const parse = (text: string): Obj => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new JetstreamMessageError('bad-json', `not JSON: ${(err as Error).message}`)
  }
  if (!isObj(value)) throw new JetstreamMessageError('bad-json', 'not a JSON object')
  return value
}

const checkDid = (did: unknown, timeUs: number | undefined): string => {
  if (!str(did) || !did.startsWith('did:')) throw new JetstreamMessageError('bad-did', 'event without a DID', timeUs)
  return did
}

/** A v1 event: `{did, time_us, kind, commit | identity | account}`. */
const readV1 = (m: Obj, nowMs: number): JetstreamMessage => {
  const timeUs = micros(m.time_us)
  if (timeUs === undefined) throw new JetstreamMessageError('bad-time', 'event without time_us')
  notAhead(timeUs, nowMs)
  switch (m.kind) {
    case 'commit':
      if (!isObj(m.commit)) throw new JetstreamMessageError('bad-commit', 'commit event without commit', timeUs)
      return readCommit(checkDid(m.did, timeUs), timeUs, m.commit)
    case 'identity':
      return { type: 'identity', timeUs, did: checkDid(m.did, timeUs) }
    case 'account':
      if (!isObj(m.account)) throw new JetstreamMessageError('bad-account', 'account event without account', timeUs)
      return readAccount(checkDid(m.did, timeUs), timeUs, m.account)
    default:
      return { type: 'other', timeUs }
  }
}

/** A v2 frame: `{$type: 'message', payload: {$type: '...#commit', ...}}` or `{$type: 'error', ...}`. */
const readV2 = (m: Obj, nowMs: number): JetstreamMessage => {
  if (m.$type === 'error') {
    return { type: 'problem', name: str(m.error) ? m.error : 'Error', message: typeof m.message === 'string' ? m.message : undefined, fatal: true }
  }
  if (m.$type !== 'message' || !isObj(m.payload)) throw new JetstreamMessageError('bad-frame', 'neither a message nor an error')
  const p = m.payload
  const kind = typeof p.$type === 'string' && p.$type.startsWith(V2_PREFIX) ? p.$type.slice(V2_PREFIX.length) : ''
  if (kind === 'info') {
    return { type: 'problem', name: str(p.name) ? p.name : 'Info', message: typeof p.message === 'string' ? p.message : undefined, fatal: false }
  }
  const timeUs = micros(p.time_us) ?? (typeof p.time === 'string' ? isoToMicros(p.time) : undefined)
  if (timeUs === undefined) throw new JetstreamMessageError('bad-time', `#${kind || 'message'} without time_us or time`)
  notAhead(timeUs, nowMs)
  switch (kind) {
    case 'commit':
      return readCommit(checkDid(p.did, timeUs), timeUs, p)
    case 'identity':
      return { type: 'identity', timeUs, did: checkDid(p.did, timeUs) }
    case 'account':
      return readAccount(checkDid(p.did, timeUs), timeUs, p)
    case 'sync': {
      if (!str(p.rev)) throw new JetstreamMessageError('bad-sync', '#sync without rev', timeUs)
      return { type: 'sync', timeUs, did: checkDid(p.did, timeUs), rev: p.rev }
    }
    default:
      return { type: 'other', timeUs }
  }
}

/**
 * One message, read. A `time_us` more than MAX_FUTURE_MS ahead of `nowMs` is malformed: it is the
 * stream position, and one from the future, committed, would make every reconnect and restart ask
 * for events nobody has written yet (a silent gap). Such a message carries no position, so it
 * moves nothing, whatever else is wrong with it.
 */
const decodeJetstreamMessage = (text: string, version: JetstreamVersion, nowMs = Date.now()): JetstreamMessage =>
  version === 'v1' ? readV1(parse(text), nowMs) : readV2(parse(text), nowMs)

/** Bytes a queued event is charged besides its message. */
const OVERHEAD = 256

/**
 * One Jetstream frame in the sources' one message shape. Its position is its time_us, never below
 * `after` (the last position read): instances stamp events a little differently, and the cursor
 * must not move back.
 */
export const readJetstreamFrame = (frame: Uint8Array, version: JetstreamVersion, after: number | null, nowMs = Date.now()): StreamMessage => {
  const at = (timeUs: number): number => Math.max(timeUs, after ?? 0)
  let msg: JetstreamMessage
  try {
    msg = decodeJetstreamMessage(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8'), version, nowMs)
  } catch (err) {
    const e = err instanceof JetstreamMessageError ? err : new JetstreamMessageError('bad-json', String(err))
    return { type: 'malformed', reason: e.reason, message: e.message, seq: e.seq === undefined ? undefined : at(e.seq) }
  }
  switch (msg.type) {
    case 'problem':
      return { type: 'problem', name: msg.name, message: msg.message, fatal: msg.fatal }
    case 'other':
      return { type: 'pass', seq: msg.timeUs === undefined ? undefined : at(msg.timeUs) }
    case 'commit': {
      const { did, rev, operation, collection, rkey, cid, record } = msg
      const event = { type: 'jetstream-commit' as const, seq: at(msg.timeUs), did, rev, operation, collection, rkey, cid, record }
      return { type: 'event', event, bytes: frame.length + OVERHEAD, time: new Date(Math.floor(msg.timeUs / 1000)).toISOString() }
    }
    case 'identity':
      return { type: 'event', event: { type: 'identity', seq: at(msg.timeUs), did: msg.did }, bytes: OVERHEAD, time: null }
    case 'account': {
      const event = { type: 'jetstream-account' as const, seq: at(msg.timeUs), did: msg.did, active: msg.active, status: msg.status }
      return { type: 'event', event, bytes: OVERHEAD, time: null }
    }
    case 'sync':
      return { type: 'event', event: { type: 'jetstream-sync', seq: at(msg.timeUs), did: msg.did, rev: msg.rev }, bytes: OVERHEAD, time: null }
  }
}
