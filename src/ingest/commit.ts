import { MemoryBlockstore, MST, def, readCarWithRoot, verifyCommitSig } from '@atproto/repo'
import type { Cid } from '@atproto/lex-data'
import type { CommitEvent, RepoOp } from './frame.ts'

/** Why a commit (or one op of it) could not be trusted. */
export class VerificationError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

export interface SigningKeys {
  /** The repo's current `#atproto` signing key as a did:key; `refresh` bypasses any cache. */
  signingKey(did: string, refresh: boolean): Promise<string>
}

export interface VerifiedOp {
  op: RepoOp
  /** The record's bytes for creates and updates, hash-checked against the op's CID. */
  record: Uint8Array | null
}

/**
 * Proves the given ops of a commit: the CAR's blocks match their CIDs, the signed commit
 * is this repo's at this rev, its signature verifies against the repo's key, and each op
 * is where it says in the signed MST (inclusion for writes, exclusion for deletes).
 * Throws VerificationError for a commit that fails as a whole.
 */
export const verifyCommitOps = async (
  evt: CommitEvent,
  ops: readonly RepoOp[],
  keys: SigningKeys,
): Promise<{ verified: VerifiedOp[]; unproven: { op: RepoOp; reason: string }[] }> => {
  let car: Awaited<ReturnType<typeof readCarWithRoot>>
  try {
    car = await readCarWithRoot(evt.blocks)
  } catch (err) {
    throw new VerificationError('bad-car', `commit blocks are not a valid CAR: ${(err as Error).message}`)
  }
  if (!car.root.equals(evt.commit)) throw new VerificationError('commit-mismatch', 'CAR root is not the event commit')
  const store = new MemoryBlockstore(car.blocks)
  let signed
  try {
    signed = await store.readObj(car.root, def.commit)
  } catch (err) {
    throw new VerificationError('missing-commit', `signed commit block missing or malformed: ${(err as Error).message}`)
  }
  if (signed.did !== evt.repo) throw new VerificationError('wrong-repo', `commit is for ${signed.did}, not ${evt.repo}`)
  if (signed.rev !== evt.rev) throw new VerificationError('wrong-rev', `commit rev ${signed.rev} is not event rev ${evt.rev}`)
  let key = await keys.signingKey(evt.repo, false)
  if (!(await verifyCommitSig(signed, key))) {
    // The key may have rotated since we cached the DID document.
    key = await keys.signingKey(evt.repo, true)
    if (!(await verifyCommitSig(signed, key))) throw new VerificationError('bad-signature', 'commit signature does not verify')
  }
  const mst = MST.load(store, signed.data)
  const verified: VerifiedOp[] = []
  const unproven: { op: RepoOp; reason: string }[] = []
  for (const op of ops) {
    let found: Cid | null
    try {
      found = await mst.get(op.path)
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
    const record = car.blocks.get(found)
    if (!record) {
      unproven.push({ op, reason: 'record block missing' })
      continue
    }
    verified.push({ op, record })
  }
  return { verified, unproven }
}
