import { MemoryBlockstore, MST, def, readCarWithRoot, type BlockMap } from '@atproto/repo'
import { verifyCommitSignature } from './signature.ts'
import type { Cid } from '@atproto/lex-data'
import type { SigningKeys } from './identity.ts'

/** Why a commit (or a repo proof) could not be trusted. */
export class VerificationError extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

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
