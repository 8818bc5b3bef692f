import { encode } from '@atproto/lex-cbor'
import type { LexValue } from '@atproto/lex-data'
import { decodeCid, parseCid } from '@atproto/lex-data'
import type { CommitEvent, RepoOp } from '../../src/sources/firehose-frame.ts'

/** An op as it goes on the wire (the decoder's op carries undecoded CIDs of its own). */
export const wireOp = (op: RepoOp): Record<string, unknown> => ({
  action: op.action,
  path: op.path,
  cid: op.link ? decodeCid(op.link.bytes) : null,
  ...(op.prev ? { prev: decodeCid(op.prev.bytes) } : {}),
})

/** A subscribeRepos frame: a DAG-CBOR header followed by a DAG-CBOR body. */
export const frame = (header: Record<string, unknown>, body: Record<string, unknown>): Uint8Array =>
  new Uint8Array(Buffer.concat([encode(header as LexValue), encode(body as LexValue)]))

/** The body of a `#commit` frame carrying this event, for re-encoding altered copies. */
export const commitBody = (evt: CommitEvent): Record<string, unknown> => ({
  seq: evt.seq,
  rebase: false,
  tooBig: false,
  repo: evt.repo,
  commit: evt.commit,
  rev: evt.rev,
  since: evt.since,
  ...(evt.prevData ? { prevData: parseCid(evt.prevData) } : {}),
  blocks: evt.blocks,
  ops: evt.ops.map(wireOp),
  blobs: [],
  time: evt.time,
})
