/**
 * A repo's signed commit, read from the CAR that carries it: a commit event's, a host's
 * `getRecord` proof or a `getRepo` snapshot. One reader for all three, on `@atcute`.
 */
import * as CBOR from '@atcute/cbor'
import type { NodeStore } from '@atcute/mst'
import { VerificationError, cidString, readCar, sameBytes, type CarStore } from './car.ts'
import type { RepoKeys } from './keys.ts'
import { CarNodeStore } from './mst.ts'
import { revInFuture } from './rev.ts'

export { VerificationError }

/** A CAR's signed commit, opened. */
export interface OpenedCommit {
  did: string
  rev: string
  /** The MST root the commit signs. */
  data: string
  /** The decoded commit block, for the signature check. */
  signed: Record<string, unknown>
  store: CarStore
  nodes: NodeStore
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Opens a CAR whose single root is a v3 commit of `did` (the commit block hash-checked), and
 * when `expectedRoot` is given, whose root is that commit. The signature is not checked here
 * (see openSignedRepo; the firehose may defer it for commits that touch no Chive record).
 */
export const openCar = (blocks: Uint8Array, did: string, expectedRoot?: Uint8Array): OpenedCommit => {
  const { root, store } = readCar(blocks)
  if (expectedRoot && !sameBytes(root, expectedRoot)) throw new VerificationError('commit-mismatch', 'CAR root is not the event commit')
  const bytes = store.read(cidString(root))
  if (!bytes) throw new VerificationError('missing-commit', 'commit block missing')
  let signed: unknown
  try {
    signed = CBOR.decode(bytes)
  } catch (err) {
    throw new VerificationError('missing-commit', `commit block is not DAG-CBOR: ${(err as Error).message}`)
  }
  if (!isObj(signed) || signed.version !== 3 || typeof signed.did !== 'string' || typeof signed.rev !== 'string' || !(signed.data instanceof CBOR.CidLinkWrapper)) {
    throw new VerificationError('missing-commit', 'commit block is not a v3 repo commit')
  }
  if (signed.did !== did) throw new VerificationError('wrong-repo', `commit is for ${signed.did}, not ${did}`)
  return { did: signed.did, rev: signed.rev, data: signed.data.$link, signed, store, nodes: new CarNodeStore(store) }
}

/**
 * Opens a CAR that a repo's host answered (`getRecord`, `getRepo`): a commit of `did` signed with
 * the repo's key (refreshed once, in case it rotated), at a rev that is not ahead of this clock.
 * `whole` checks every block of the CAR now (a snapshot) rather than as the tree is read.
 */
export const openSignedRepo = async (blocks: Uint8Array, did: string, keys: RepoKeys, whole = false): Promise<OpenedCommit> => {
  const opened = openCar(blocks, did)
  if (whole) opened.store.checkAll()
  if (!(await keys.verifies(did, opened.signed))) throw new VerificationError('bad-signature', 'commit signature does not verify')
  if (revInFuture(opened.rev)) throw new VerificationError('future-rev', `commit rev ${opened.rev} is more than 5 minutes ahead`)
  return opened
}
