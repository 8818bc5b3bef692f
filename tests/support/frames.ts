import { encode } from '@atproto/lex-cbor'
import type { LexValue } from '@atproto/lex-data'
import type { CommitEvent } from '../../src/ingest/frame.ts'

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
  blocks: evt.blocks,
  ops: evt.ops,
  blobs: [],
  time: evt.time,
})
