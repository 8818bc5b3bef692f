import { BytesWrapper, CidLinkWrapper, decodeFirst } from '@atcute/cbor'
import { decodeCid, type Cid } from '@atproto/lex-data'
import { CHIVE_PREFIX } from '../db/effects.ts'
import type { AccountEvent, CommitEvent, IdentityEvent, RepoOp, SyncEvent } from './events.ts'

export type { AccountEvent, CommitEvent, IdentityEvent, RepoOp, SyncEvent }

/** `#info` messages, e.g. OutdatedCursor. */
export interface InfoEvent {
  type: 'info'
  name: string
  message: string | undefined
}

/** An error frame: the relay closes the stream after it (FutureCursor, ConsumerTooSlow). */
export interface ErrorFrame {
  type: 'error'
  error: string
  message: string | undefined
}

/** A message type this service does not know; it still carries a seq to advance past. */
export interface OtherEvent {
  type: 'other'
  t: string
  seq: number | undefined
}

export type FirehoseEvent = CommitEvent | SyncEvent | IdentityEvent | AccountEvent | InfoEvent | ErrorFrame | OtherEvent

/** A frame that cannot be understood. `seq` is set when the body got far enough to carry one. */
export class FrameError extends Error {
  readonly reason: string
  readonly seq: number | undefined
  constructor(reason: string, message: string, seq?: number) {
    super(message)
    this.reason = reason
    this.seq = seq
  }
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  !(v instanceof Uint8Array) &&
  !(v instanceof BytesWrapper) &&
  !(v instanceof CidLinkWrapper)

const toCid = (v: unknown): Cid | null => {
  if (!(v instanceof CidLinkWrapper)) return null
  try {
    return decodeCid(v.bytes)
  } catch {
    return null
  }
}

/** CIDv1, dag-cbor, sha2-256: what every commit CID is. */
const isSha256DagCbor = (b: Uint8Array): boolean => b.length === 36 && b[0] === 0x01 && b[1] === 0x71 && b[2] === 0x12 && b[3] === 0x20

/**
 * A commit whose CIDs are decoded on first use: most commits are never verified, and decoding
 * the commit CID and prevData of each would cost a tenth of the time spent per frame.
 */
class LazyCommit implements CommitEvent {
  readonly type = 'commit'
  seq: number
  repo: string
  rev: string
  since: string | null
  blocks: Uint8Array
  ops: RepoOp[]
  time: string
  #link: CidLinkWrapper
  #prev: CidLinkWrapper | null
  #commit: Cid | undefined

  constructor(f: Omit<CommitEvent, 'type' | 'commit' | 'commitLink' | 'prevData'>, link: CidLinkWrapper, prev: CidLinkWrapper | null) {
    this.seq = f.seq
    this.repo = f.repo
    this.rev = f.rev
    this.since = f.since
    this.blocks = f.blocks
    this.ops = f.ops
    this.time = f.time
    this.#link = link
    this.#prev = prev
  }

  get commitLink(): CidLinkWrapper {
    return this.#link
  }

  get commit(): Cid {
    return (this.#commit ??= toCid(this.#link) as Cid)
  }

  get prevData(): string | null {
    return this.#prev ? this.#prev.$link : null
  }
}

const DID_RE = /^did:[a-z]+:[a-zA-Z0-9._:%-]{1,2048}$/
const REV_RE = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/

const field = {
  seq(body: Obj): number {
    const seq = body.seq
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new FrameError('bad-field', 'seq is not a non-negative integer')
    return seq
  },
  did(body: Obj, name: string, seq: number): string {
    const v = body[name]
    if (typeof v !== 'string' || !DID_RE.test(v)) throw new FrameError('bad-field', `${name} is not a DID`, seq)
    return v
  },
  rev(body: Obj, name: string, seq: number): string {
    const v = body[name]
    if (typeof v !== 'string' || !REV_RE.test(v)) throw new FrameError('bad-field', `${name} is not a TID`, seq)
    return v
  },
  bytes(body: Obj, name: string, seq: number): Uint8Array {
    const v = body[name]
    if (!(v instanceof BytesWrapper)) throw new FrameError('bad-field', `${name} is not bytes`, seq)
    return v.buf
  },
  optString(body: Obj, name: string): string | undefined {
    const v = body[name]
    return typeof v === 'string' ? v : undefined
  },
}

const parseOps = (raw: unknown, seq: number): RepoOp[] => {
  if (!Array.isArray(raw)) throw new FrameError('bad-field', 'ops is not an array', seq)
  return raw.map((op: unknown) => {
    if (!isObj(op)) throw new FrameError('bad-field', 'op is not an object', seq)
    const { action, path, cid, prev } = op
    if (action !== 'create' && action !== 'update' && action !== 'delete') {
      throw new FrameError('bad-field', `unknown op action`, seq)
    }
    if (typeof path !== 'string' || path.length > 1024) throw new FrameError('bad-field', 'op path is not a string', seq)
    if (cid !== null && cid !== undefined && !(cid instanceof CidLinkWrapper)) {
      throw new FrameError('bad-field', 'op cid is not a CID', seq)
    }
    if (prev !== null && prev !== undefined && !(prev instanceof CidLinkWrapper)) {
      throw new FrameError('bad-field', 'op prev is not a CID', seq)
    }
    const link = cid ?? null
    const before = prev ?? null
    if (!path.startsWith(CHIVE_PREFIX) || link === null) return { action, path, cid: null, link, prev: before }
    const decoded = toCid(link)
    if (!decoded) throw new FrameError('bad-field', 'op cid is not a valid CID', seq)
    return { action, path, cid: decoded, link, prev: before }
  })
}

/**
 * Decodes one subscribeRepos frame: a `{op, t}` header followed by a body, both DAG-CBOR.
 * `@atcute/cbor` does the decoding (several times faster than `@atproto/lex-cbor` on frames, and
 * every frame is decoded); the CAR inside is read (atproto/car.ts) only when it is verified.
 */
export const decodeFrame = (bytes: Uint8Array): FirehoseEvent => {
  let header: unknown
  let body: unknown
  let rest: Uint8Array
  try {
    ;[header, rest] = decodeFirst(bytes)
    if (rest.length === 0) throw new FrameError('bad-frame', 'frame holds a header and no body')
    ;[body, rest] = decodeFirst(rest)
  } catch (err) {
    if (err instanceof FrameError) throw err
    throw new FrameError('bad-cbor', `frame is not DAG-CBOR: ${(err as Error).message}`)
  }
  if (rest.length !== 0 || !isObj(header) || !isObj(body)) {
    throw new FrameError('bad-frame', 'frame must hold exactly a header and a body')
  }
  if (header.op === -1) {
    return { type: 'error', error: field.optString(body, 'error') ?? 'Unknown', message: field.optString(body, 'message') }
  }
  if (header.op !== 1 || typeof header.t !== 'string') throw new FrameError('bad-frame', 'unknown header')
  switch (header.t) {
    case '#commit': {
      const seq = field.seq(body)
      const link = body.commit
      // The usual commit CID is only checked for shape here (see LazyCommit).
      if (!(link instanceof CidLinkWrapper) || (!isSha256DagCbor(link.bytes) && !toCid(link))) {
        throw new FrameError('bad-field', 'commit is not a CID', seq)
      }
      const prev = body.prevData instanceof CidLinkWrapper ? body.prevData : null
      const since = body.since
      const evt = {
        seq,
        repo: field.did(body, 'repo', seq),
        rev: field.rev(body, 'rev', seq),
        since: typeof since === 'string' ? since : null,
        blocks: field.bytes(body, 'blocks', seq),
        ops: parseOps(body.ops, seq),
        time: field.optString(body, 'time') ?? '',
      }
      return new LazyCommit(evt, link, prev)
    }
    case '#sync': {
      const seq = field.seq(body)
      return { type: 'sync', seq, did: field.did(body, 'did', seq), rev: field.rev(body, 'rev', seq), blocks: field.bytes(body, 'blocks', seq) }
    }
    case '#identity': {
      const seq = field.seq(body)
      return { type: 'identity', seq, did: field.did(body, 'did', seq) }
    }
    case '#account': {
      const seq = field.seq(body)
      const active = body.active
      if (typeof active !== 'boolean') throw new FrameError('bad-field', 'active is not a boolean', seq)
      return { type: 'account', seq, did: field.did(body, 'did', seq), active, status: field.optString(body, 'status') }
    }
    case '#info':
      return { type: 'info', name: field.optString(body, 'name') ?? 'Unknown', message: field.optString(body, 'message') }
    default: {
      const seq = body.seq
      return { type: 'other', t: header.t, seq: typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined }
    }
  }
}
