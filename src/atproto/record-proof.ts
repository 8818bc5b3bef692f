/**
 * Proofs of single records from their repo's own host, for a source that signs nothing
 * (Jetstream) and for invite subjects: `com.atproto.sync.getRecord` answers with a CAR holding the repo's signed commit
 * and the MST path to the record, or to where it would be (a proof of absence).
 *
 * The invariant kept here: **a host's answer is never a verdict on the event.** A host that
 * cannot be reached, answers an error, or sends a proof that does not hold (a key rotation in
 * flight, a broken host, a commit at a rev ahead of this clock) throws a TransientError, so the repo is parked and retried, and past
 * INGEST_PARK_MAX_MS handed to a resync. Only a proof that holds is compared with the event.
 */
import type { IdResolver } from '@atproto/identity'
import { resolvePds } from './identity.ts'
import { TransientError } from '../lib/transient.ts'
import { provePath } from './chain.ts'
import { VerificationError, openSignedRepo } from './commit.ts'
import type { RepoKeys } from './keys.ts'
import { xrpcGet, type Fetch, type XrpcAnswer } from './host.ts'

export interface RecordProof {
  /** The rev of the signed commit the proof hangs from: the repo as its host has it now. */
  rev: string
  /** The MST root that commit signs. */
  data: string
  /** The record at the path in that tree, or null when the tree proves it absent. */
  found: { cid: string; record: Uint8Array } | null
}

/** What the repo's host says of the account (`com.atproto.sync.getRepoStatus`). */
export interface HostStatus {
  active: boolean
  status: string | undefined
}

export interface ProofCounts {
  inFlight: number
  outcomes: Record<string, number>
  /** Bytes of hosts' answers (proofs, listings, account states): Jetstream mode's other traffic. */
  bytesReceived: number
}

export interface RecordRequest {
  pds: string
  did: string
  collection: string
  rkey: string
}

/**
 * Asks the repo's host for `com.atproto.sync.getRecord` and proves the answer: a commit of the
 * repo signed with its key, not ahead of this clock, and the MST path to the record (or to where
 * it would be). `'no-proof'` when the host answers RecordNotFound without a CAR.
 */
export const proveRecord = async (get: (url: URL) => Promise<XrpcAnswer>, keys: RepoKeys, req: RecordRequest): Promise<RecordProof | 'no-proof'> => {
  const url = new URL('/xrpc/com.atproto.sync.getRecord', req.pds)
  url.searchParams.set('did', req.did)
  url.searchParams.set('collection', req.collection)
  url.searchParams.set('rkey', req.rkey)
  const answer = await get(url)
  if (!answer.ok) {
    // The host's word, not a proof: nothing is applied on it.
    if (answer.error === 'RecordNotFound') return 'no-proof'
    throw new TransientError('proof-unavailable', `${url.host} answered ${answer.status} ${answer.error}`.trim())
  }
  try {
    const opened = await openSignedRepo(answer.body, req.did, keys)
    return { rev: opened.rev, data: opened.data, found: await provePath(opened, `${req.collection}/${req.rkey}`) }
  } catch (err) {
    if (!(err instanceof VerificationError)) throw err
    throw new TransientError('bad-proof', `${url.host}: ${err.reason}: ${err.message}`)
  }
}

/**
 * An invite subject's current CID in its author's signed repo, or null when the repo proves (or
 * its host states) that the record does not exist.
 */
export const proveSubject = async (fetch: Fetch, req: RecordRequest, keys: RepoKeys): Promise<string | null> => {
  const proof = await proveRecord((url) => xrpcGet(fetch, url), keys, req)
  return proof === 'no-proof' ? null : (proof.found?.cid ?? null)
}

export class RecordProofs {
  readonly counts: ProofCounts = { inFlight: 0, outcomes: {}, bytesReceived: 0 }
  private readonly idResolver: IdResolver
  private readonly keys: RepoKeys
  private readonly fetch: Fetch

  constructor(opts: { idResolver: IdResolver; keys: RepoKeys; fetch: Fetch }) {
    this.idResolver = opts.idResolver
    this.keys = opts.keys
    this.fetch = opts.fetch
  }

  /** The repo's host, from its DID document; waiting for the document holds no slot (see keys.ts). */
  private async get(url: URL) {
    const answer = await xrpcGet(this.fetch, url)
    if (answer.ok) this.counts.bytesReceived += answer.body.length
    return answer
  }

  private host(did: string): Promise<string> {
    // The key's fetch caches the document; until it is held the repo waits, parked.
    this.keys.now(did)
    return resolvePds(this.idResolver, did)
  }

  /**
   * The record's proof from its host; `'no-proof'` when the host states the record is not found
   * without a CAR to show it (some hosts do): only a whole-repo sync can settle that.
   */
  async prove(did: string, collection: string, rkey: string): Promise<RecordProof | 'no-proof'> {
    const pds = await this.host(did)
    this.counts.inFlight++
    try {
      return await proveRecord((url) => this.get(url), this.keys, { pds, did, collection, rkey })
    } finally {
      this.counts.inFlight--
    }
  }

  /**
   * What the host lists of one collection of the repo, by URI with CIDs (`listRecords`, paged).
   * Unsigned: it only says which records to prove.
   */
  async listRecords(did: string, collection: string, maxPages = 50): Promise<Map<string, string>> {
    const pds = await this.host(did)
    const out = new Map<string, string>()
    let cursor: string | undefined
    for (let page = 0; page < maxPages; page++) {
      const url = new URL('/xrpc/com.atproto.repo.listRecords', pds)
      url.searchParams.set('repo', did)
      url.searchParams.set('collection', collection)
      url.searchParams.set('limit', '100')
      if (cursor) url.searchParams.set('cursor', cursor)
      const answer = await this.get(url)
      if (!answer.ok) throw new TransientError('list-unavailable', `${url.host} answered ${answer.status} ${answer.error}`.trim())
      let body: { records?: { uri?: unknown; cid?: unknown }[]; cursor?: unknown }
      try {
        body = JSON.parse(new TextDecoder().decode(answer.body)) as typeof body
      } catch {
        throw new TransientError('list-unavailable', `${url.host}: listRecords is not JSON`)
      }
      const records = Array.isArray(body.records) ? body.records : []
      for (const r of records) if (typeof r.uri === 'string' && typeof r.cid === 'string') out.set(r.uri, r.cid)
      if (typeof body.cursor !== 'string' || records.length === 0) break
      cursor = body.cursor
    }
    return out
  }

  /** The account's state as its own host reports it; an unknown repo is a deleted account. */
  async hostStatus(did: string): Promise<HostStatus> {
    const pds = await this.host(did)
    const url = new URL('/xrpc/com.atproto.sync.getRepoStatus', pds)
    url.searchParams.set('did', did)
    const answer = await this.get(url)
    if (!answer.ok) {
      if (answer.error === 'RepoNotFound') return { active: false, status: 'deleted' }
      throw new TransientError('status-unavailable', `${url.host} answered ${answer.status} ${answer.error}`.trim())
    }
    let body: unknown
    try {
      body = JSON.parse(new TextDecoder().decode(answer.body))
    } catch {
      throw new TransientError('status-unavailable', `${url.host}: getRepoStatus is not JSON`)
    }
    const b = body as { did?: unknown; active?: unknown; status?: unknown }
    if (b.did !== did || typeof b.active !== 'boolean') throw new TransientError('status-unavailable', `${url.host}: getRepoStatus is not about ${did}`)
    return { active: b.active, status: typeof b.status === 'string' ? b.status : undefined }
  }
}
