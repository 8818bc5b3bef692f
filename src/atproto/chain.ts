/**
 * Sync 1.1 validation of one `#commit` from its own CAR: the commit block (hash-checked, of this
 * repo at this rev), the proof of each op in the signed tree, and the inversion of every op,
 * which must lead back to the tree before the commit.
 *
 * Why inversion: `since`, `prevData` and `ops` are unsigned fields of the event. Inverting the ops
 * on the signed tree and landing exactly on the root we hold proves that the ops are the whole
 * difference between the two trees: a stripped op, a dropped commit or a rewritten `prevData`
 * lands elsewhere.
 */
import type * as CBOR from '@atcute/cbor'
import { MissingBlockError } from '@atcute/mst'
import type { Cid } from '@atproto/lex-data'
import { VerificationError } from './car.ts'
import { openCar, type OpenedCommit } from './commit.ts'
import { findPath } from './mst.ts'
import { TreeEditor } from './mst-node.ts'

/** One op of a commit event, as sync 1.1 states it. */
export interface RepoOp {
  action: 'create' | 'update' | 'delete'
  path: string
  /** Decoded only for Chive records (`pub.chive.*`), the only ones whose record is ever read. */
  cid: Cid | null
  /** The op's CID as sent (any collection), for the chain's inversion; null for deletes. */
  link: CBOR.CidLinkWrapper | null
  /** The record's CID before this op (sync 1.1), for updates and deletes. */
  prev: CBOR.CidLinkWrapper | null
}

/** The chain's name for a verdict on an event: the one VerificationError of every CAR reader. */
export { VerificationError as ChainError, type OpenedCommit }

/**
 * Opens a commit event's CAR: its root is the event's commit, the commit block matches its CID,
 * is a v3 commit of the event's repo at the event's rev. The signature is not checked here (see
 * the indexer: it may be deferred for commits that touch no Chive record).
 */
export const openCommit = (evt: { repo: string; rev: string; commitLink: CBOR.CidLinkWrapper; blocks: Uint8Array }): OpenedCommit => {
  const opened = openCar(evt.blocks, evt.repo, evt.commitLink.bytes)
  if (opened.rev !== evt.rev) throw new VerificationError('wrong-rev', `commit rev ${opened.rev} is not event rev ${evt.rev}`)
  return opened
}

/**
 * What the signed tree holds at `path`: the record's CID and its bytes (hash-checked), or null
 * when the tree proves the path absent. Throws when the CAR lacks the proof's blocks.
 */
export const provePath = async (opened: OpenedCommit, path: string): Promise<{ cid: string; record: Uint8Array } | null> => {
  const found = await findPath(opened.nodes, opened.data, path)
  if (found === null) return null
  const record = opened.store.read(found.$link)
  if (!record) throw new VerificationError('unproven-op', `${path}: record block missing`)
  return { cid: found.$link, record }
}

/** An op proven against the signed tree: a write's record bytes (hash-checked), null for a delete. */
export interface ProvenOp {
  op: RepoOp
  record: Uint8Array | null
}

/**
 * Proves each op in the signed tree (a write's CID is at its path, a delete's path is absent) and
 * reads the records of `wanted` ops. Throws a VerificationError when an op is not what the tree
 * holds: the event's op list is then not the commit's.
 */
export const proveOps = async (opened: OpenedCommit, ops: readonly RepoOp[], wanted: (op: RepoOp) => boolean): Promise<ProvenOp[]> => {
  const proven: ProvenOp[] = []
  for (const op of ops) {
    const found = await findPath(opened.nodes, opened.data, op.path)
    if (op.action === 'delete') {
      if (found !== null) throw new VerificationError('unproven-op', `${op.path}: deleted record still in the signed tree`)
      if (wanted(op)) proven.push({ op, record: null })
      continue
    }
    if (op.link === null || found === null || found.$link !== op.link.$link) {
      throw new VerificationError('unproven-op', `${op.path}: op CID is not the CID in the signed tree`)
    }
    if (!wanted(op)) continue
    const record = opened.store.read(op.link.$link)
    if (!record) throw new VerificationError('unproven-op', `${op.path}: record block missing`)
    proven.push({ op, record })
  }
  return proven
}

/**
 * Undoes the ops on the signed tree and returns the root they lead back to: the tree before the
 * commit, if the ops are the commit's whole difference. Ops must have been proven first.
 */
export const invertOps = async (opened: OpenedCommit, ops: readonly RepoOp[]): Promise<string> => {
  const editor = new TreeEditor(opened.nodes)
  let root = opened.data
  try {
    for (const op of ops) {
      if (op.action === 'create') {
        root = await editor.delete(root, op.path)
        continue
      }
      if (op.prev === null) throw new VerificationError('not-invertible', `${op.path}: ${op.action} without prev`)
      root = await editor.put(root, op.path, op.prev)
    }
  } catch (err) {
    if (err instanceof VerificationError) throw err
    if (err instanceof MissingBlockError) throw new VerificationError('not-invertible', `the CAR lacks blocks the inversion needs: ${err.message}`)
    throw new VerificationError('not-invertible', `ops cannot be inverted: ${(err as Error).message}`)
  }
  return root
}
