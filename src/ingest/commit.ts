import { MemoryBlockstore, MST, def, readCarWithRoot, type BlockMap } from '@atproto/repo'
import { verifyCommitSignature } from './signature.ts'
import { isCidForBytes, type Cid } from '@atproto/lex-data'
import type { CommitEvent, RepoOp } from './frame.ts'
import type { SigningKeys } from '../identity.ts'

/** Why a commit (or a repo proof) could not be trusted. */
export class VerificationError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

export type { SigningKeys }

export interface SignedRepo {
  root: Cid
  rev: string
  /** The MST root the commit signs. */
  data: Cid
  blocks: BlockMap
  mst: MST
}

const readCar = async (carBytes: Uint8Array, skipCidVerification: boolean) => {
  try {
    return await readCarWithRoot(carBytes, { skipCidVerification })
  } catch (err) {
    throw new VerificationError('bad-car', `not a valid CAR: ${(err as Error).message}`)
  }
}

/** The CAR root's signed commit: of this repo, signed with its key (refreshed once, in case it rotated). */
const checkSignedCommit = async (store: MemoryBlockstore, root: Cid, did: string, keys: SigningKeys) => {
  let signed
  try {
    signed = await store.readObj(root, def.commit)
  } catch (err) {
    throw new VerificationError('missing-commit', `signed commit block missing or malformed: ${(err as Error).message}`)
  }
  if (signed.did !== did) throw new VerificationError('wrong-repo', `commit is for ${signed.did}, not ${did}`)
  if (!verifyCommitSignature(signed, await keys.signingKey(did, false))) {
    if (!verifyCommitSignature(signed, await keys.signingKey(did, true))) {
      throw new VerificationError('bad-signature', 'commit signature does not verify')
    }
  }
  return signed
}

/**
 * Opens a CAR that carries a signed commit of `did`'s repo: every block matches its CID, the
 * root is a commit of this repo, and its signature verifies against the repo's key. Proof paths
 * in the MST can then be walked from `mst`.
 */
export const openSignedRepo = async (carBytes: Uint8Array, did: string, keys: SigningKeys): Promise<SignedRepo> => {
  const car = await readCar(carBytes, false)
  const store = new MemoryBlockstore(car.blocks)
  const signed = await checkSignedCommit(store, car.root, did, keys)
  return { root: car.root, rev: signed.rev, data: signed.data, blocks: car.blocks, mst: MST.load(store, signed.data) }
}

/**
 * The signed commit of a CAR, without checking the other blocks: enough to follow a tracked repo's
 * chain (rev and MST root) through commits that touch none of our records. The commit block's own
 * hash and signature are checked.
 */
const readSignedCommit = async (carBytes: Uint8Array, did: string, keys: SigningKeys): Promise<{ root: Cid; rev: string; data: Cid }> => {
  const car = await readCar(carBytes, true)
  const bytes = car.blocks.get(car.root)
  if (!bytes || !(await isCidForBytes(car.root, bytes))) throw new VerificationError('bad-car', 'commit block missing or not its CID')
  const signed = await checkSignedCommit(new MemoryBlockstore(car.blocks), car.root, did, keys)
  return { root: car.root, rev: signed.rev, data: signed.data }
}

export interface VerifiedOp {
  op: RepoOp
  /** The record's bytes for creates and updates, hash-checked against the op's CID. */
  record: Uint8Array | null
}

/**
 * Proves the given ops of a commit event: the CAR is a signed commit of the event's repo at the
 * event's rev and commit CID, and each op is where it says in the signed MST (inclusion for
 * writes, exclusion for deletes). Throws VerificationError when the commit fails as a whole.
 */
export const verifyCommitOps = async (
  evt: CommitEvent,
  ops: readonly RepoOp[],
  keys: SigningKeys,
): Promise<{ verified: VerifiedOp[]; unproven: { op: RepoOp; reason: string }[]; data: string }> => {
  if (ops.length === 0) {
    const commit = await readSignedCommit(evt.blocks, evt.repo, keys)
    if (!commit.root.equals(evt.commit)) throw new VerificationError('commit-mismatch', 'CAR root is not the event commit')
    if (commit.rev !== evt.rev) throw new VerificationError('wrong-rev', `commit rev ${commit.rev} is not event rev ${evt.rev}`)
    return { verified: [], unproven: [], data: commit.data.toString() }
  }
  const repo = await openSignedRepo(evt.blocks, evt.repo, keys)
  if (!repo.root.equals(evt.commit)) throw new VerificationError('commit-mismatch', 'CAR root is not the event commit')
  if (repo.rev !== evt.rev) throw new VerificationError('wrong-rev', `commit rev ${repo.rev} is not event rev ${evt.rev}`)
  const verified: VerifiedOp[] = []
  const unproven: { op: RepoOp; reason: string }[] = []
  for (const op of ops) {
    let found: Cid | null
    try {
      found = await repo.mst.get(op.path)
    } catch (err) {
      unproven.push({ op, reason: `missing-proof: ${(err as Error).message}` })
      continue
    }
    if (op.action === 'delete') {
      if (found === null) verified.push({ op, record: null })
      else unproven.push({ op, reason: 'deleted record still in the signed tree' })
      continue
    }
    if (op.cid === null || found === null || !found.equals(op.cid)) {
      unproven.push({ op, reason: 'op CID is not the CID in the signed tree' })
      continue
    }
    const record = repo.blocks.get(found)
    if (!record) {
      unproven.push({ op, reason: 'record block missing' })
      continue
    }
    verified.push({ op, record })
  }
  return { verified, unproven, data: repo.data.toString() }
}
