import type { Lexicons } from '@atproto/lexicon'
import { ACCEPTANCE_NSID, CHIVE_PREFIX, INVITE_NSID, OUR_COLLECTIONS, type Collection, type Effect } from '../db/effects.ts'
import { openSignedRepo, VerificationError, type OpenedCommit } from '../atproto/commit.ts'
import type { SigningKeys } from '../atproto/identity.ts'
import { walkPrefix } from '../atproto/mst.ts'
import { recordEffect } from '../pipeline/record.ts'
import { TransientError, xrpcGet, type Fetch } from '../atproto/host.ts'

/**
 * What a snapshot proves, not what kept it from being fetched: the host states the repo gone, or
 * serves a repo that does not verify. Asking again cannot change it, so a resync ends with it;
 * anything else is a TransientError and the resync is tried again, however long it takes.
 */
export class SnapshotVerdict extends Error {
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

/** Host errors that say the repo is no longer there (deactivated or suspended ones may come back: retried). */
const GONE: ReadonlySet<string> = new Set(['RepoNotFound', 'RepoDeleted', 'RepoTakendown'])

export interface HeldRecords {
  invites: string[]
  acceptances: string[]
  subjects: string[]
}

export interface RepoSnapshot {
  rev: string
  dataCid: string
  /** Effects that bring the index to the snapshot: writes at its rev, and deletes of what it lacks. */
  effects: Effect[]
  records: number
}

/**
 * Fetches a repo with `com.atproto.sync.getRepo` and proves it as the live path proves a commit:
 * every block hashes to its CID, the commit is signed by the repo's key and its rev is not ahead of
 * this clock (openSignedRepo, the same reader as the stream's and the proofs'). Every Chive record in
 * the signed tree is written at the snapshot's rev; every record we hold that the tree lacks is
 * deleted at that rev. Rev guards make the result the same whichever of this and the live stream
 * lands first.
 */
export const snapshotRepo = async (
  fetch: Fetch,
  pds: string,
  did: string,
  keys: SigningKeys,
  lexicons: Lexicons,
  held: HeldRecords,
): Promise<RepoSnapshot> => {
  const url = new URL('/xrpc/com.atproto.sync.getRepo', pds)
  url.searchParams.set('did', did)
  const answer = await xrpcGet(fetch, url)
  if (!answer.ok) {
    const message = `${url.host} answered ${answer.status} ${answer.error}`.trim()
    if (GONE.has(answer.error)) throw new SnapshotVerdict('repo-gone', message)
    throw new TransientError('repo-unavailable', message)
  }
  let repo: OpenedCommit
  try {
    repo = await openSignedRepo(answer.body, did, keys, true)
  } catch (err) {
    // A key that could not be fetched says nothing about the repo; nor does a rev ahead of this
    // clock (the host's clock may be fast: asked again later, it may pass the bound).
    if (err instanceof VerificationError && err.reason === 'future-rev') throw new TransientError('future-rev', `${err.reason}: ${err.message}`)
    if (err instanceof VerificationError) throw new SnapshotVerdict('bad-proof', `${err.reason}: ${err.message}`)
    if (err instanceof TransientError) throw err
    throw new TransientError('bad-repo', (err as Error).message)
  }
  const { rev } = repo
  const effects: Effect[] = []
  const present = new Set<string>()
  let records = 0
  try {
    for await (const [key, value] of walkPrefix(repo.nodes, repo.data, CHIVE_PREFIX)) {
      const collection = key.slice(0, key.indexOf('/'))
      const uri = `at://${did}/${key}`
      const cid = value.$link
      present.add(uri)
      if (!OUR_COLLECTIONS.has(collection)) {
        effects.push({ kind: 'subject', uri, repo: did, collection, rev, seq: null, action: 'update', cid })
        continue
      }
      const bytes = repo.store.read(cid)
      if (!bytes) throw new SnapshotVerdict('bad-proof', `record block missing for ${uri}`)
      records++
      effects.push(recordEffect(lexicons, { uri, repo: did, collection: collection as Collection, rev, seq: null, cid }, bytes))
    }
  } catch (err) {
    if (err instanceof SnapshotVerdict) throw err
    throw new SnapshotVerdict('bad-proof', `incomplete repo tree: ${(err as Error).message}`)
  }
  const gone = (uris: string[]) => uris.filter((uri) => !present.has(uri))
  for (const uri of gone(held.invites)) effects.push({ kind: 'delete', uri, repo: did, collection: INVITE_NSID, rev, seq: null })
  for (const uri of gone(held.acceptances)) effects.push({ kind: 'delete', uri, repo: did, collection: ACCEPTANCE_NSID, rev, seq: null })
  for (const uri of gone(held.subjects)) {
    const collection = uri.split('/')[3] ?? ''
    effects.push({ kind: 'subject', uri, repo: did, collection, rev, seq: null, action: 'delete', cid: null })
  }
  return { rev, dataCid: repo.data, effects, records }
}
