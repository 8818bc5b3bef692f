/**
 * What one repo's event means for the index, decided in that repo's order (see repo-queue.ts).
 *
 * The invariant kept here: **only a verdict is a rejection.** A verdict is something the event
 * itself proves wrong: a bad signature, a CAR or op list that does not match its signed tree, an
 * invalid record. Anything else (the DID document cannot be fetched, the database is away) is
 * thrown, and the queue parks the repo and retries; the cursor waits.
 *
 * Tracked repos get full sync 1.1 validation on every commit, Chive ops or not: the ops are
 * inverted on the commit's blocks and must lead back exactly to the tree we hold (chain.ts).
 * Signatures are checked at once for every commit with a Chive op, for every commit of a repo not
 * tracked yet and after any chain break; for the other commits of a tracked repo only the latest
 * is checked, once a second (see the README's *Sync 1.1* for why nothing unverified can then
 * change what is served).
 */
import { hash } from 'node:crypto'
import type { IdResolver } from '@atproto/identity'
import type { Lexicons } from '@atproto/lexicon'
import * as CBOR from '@atcute/cbor'
import { fromUint8Array } from '@atcute/car'
import { cidForLex } from '@atproto/lex-cbor'
import { jsonToLex, type JsonValue } from '@atproto/lex-json'
import type { Logger } from '../lib/log.ts'
import { CHIVE_PREFIX, OUR_COLLECTIONS, type Collection, type Effect } from '../db/effects.ts'
import { ChainError, invertOps, openCommit, proveOps } from '../atproto/chain.ts'
import type { AccountEvent, CommitEvent, IdentityEvent, JetstreamAccountEvent, JetstreamCommitEvent, JetstreamSyncEvent, RepoEvent, RepoOp, SyncEvent } from '../sources/events.ts'
import { isRepoDid, type RepoKeys } from '../atproto/keys.ts'
import { revInFuture } from '../atproto/rev.ts'
import { recordEffect } from './record.ts'
import { verifyAtcuteCommitSignature, type PublicKey } from '../atproto/signature.ts'
import type { HeldRepo, TrackedRepos } from './tracked.ts'
import { bump } from '../lib/counts.ts'
import { TransientError } from '../lib/transient.ts'
import type { RecordProof, RecordProofs } from '../atproto/record-proof.ts'

export interface RepoEventCounts {
  staleIgnored: number
  resyncsRequested: number
  rejected: Record<string, number>
  deferredSignatures: number
}

export interface RepoEventsOptions {
  lexicons: Lexicons
  keys: RepoKeys
  idResolver: IdResolver
  tracked: TrackedRepos
  log: Logger
  counts: RepoEventCounts
  /** The newest rev of the records the index holds of a repo it may not track; null when none. */
  latestRecordRev: (did: string) => Promise<string | null>
  /** Told when a tracked repo has a commit whose signature is still to be checked. */
  onUnsigned: (did: string) => void
  /** Record proofs from repos' hosts: the Jetstream mode's verification. */
  proofs?: RecordProofs | undefined
}

/** Retries of a Jetstream event whose rev its host does not have, before it is called forged. */
const BEHIND_ATTEMPTS = 3

const collectionOf = (path: string): string => {
  const slash = path.indexOf('/')
  return slash === -1 ? path : path.slice(0, slash)
}


/** Statuses that say the host's stream is incomplete, not that the account is gone. */
const RESYNC_STATUSES: ReadonlySet<string> = new Set(['desynchronized', 'throttled'])

export class RepoEvents {
  private readonly opts: RepoEventsOptions

  constructor(opts: RepoEventsOptions) {
    this.opts = opts
  }

  /** Effects of one event, in order; throws for a transient failure (nothing is pushed then). */
  async process(did: string, evt: RepoEvent): Promise<Effect[]> {
    const out: Effect[] = []
    switch (evt.type) {
      case 'commit':
        await this.commit(evt, out)
        break
      case 'sync':
        await this.sync(evt, out)
        break
      case 'identity':
        await this.identity(evt, out)
        break
      case 'account':
        this.account(evt, out)
        break
      case 'signature-check':
        await this.signatureCheck(did, out)
        break
      case 'jetstream-commit':
        await this.jetstreamCommit(evt, out)
        break
      case 'jetstream-account':
        await this.jetstreamAccount(evt, out)
        break
      case 'jetstream-sync':
        await this.jetstreamSync(evt, out)
        break
    }
    return out
  }

  /** Effects of an event whose repo went to a resync instead (its queue overflowed). */
  resync(did: string, reason: string, out: Effect[]): void {
    this.opts.counts.resyncsRequested++
    this.opts.log.warn({ did, reason }, 'repo out of sync; resync queued')
    const held = this.opts.tracked.peek(did)
    if (held) held.status = 'desynchronized'
    out.push({ kind: 'resync', did, reason })
  }

  private reject(evt: CommitEvent, op: RepoOp, reason: string, detail: string, out: Effect[]): void {
    bump(this.opts.counts.rejected, reason)
    this.opts.log.warn({ repo: evt.repo, path: op.path, seq: evt.seq, reason, detail }, 'op rejected')
    out.push({
      kind: 'rejection',
      uri: `at://${evt.repo}/${op.path}`,
      collection: collectionOf(op.path),
      repo: evt.repo,
      rev: undefined,
      cid: op.cid?.toString(),
      seq: evt.seq,
      reason,
      detail,
      record: undefined,
    })
  }

  /** The repo's key; a signature that fails is retried once with a freshly fetched key. */
  private async signedBy(did: string, signed: Record<string, unknown>): Promise<boolean> {
    const key: PublicKey = this.opts.keys.now(did)
    if (verifyAtcuteCommitSignature(signed, key)) return true
    if (!this.opts.keys.mayRefresh(did)) return false
    return verifyAtcuteCommitSignature(signed, await this.opts.keys.get(did, true))
  }

  private async commit(evt: CommitEvent, out: Effect[]): Promise<void> {
    const chive = evt.ops.filter((op) => op.path.startsWith(CHIVE_PREFIX))
    const verdict = (reason: string, detail: string) => {
      for (const op of chive) this.reject(evt, op, reason, detail, out)
    }
    if (!isRepoDid(evt.repo)) return verdict('unsupported-did', `${evt.repo}: repos are did:plc or did:web`)
    if (revInFuture(evt.rev)) return verdict('future-rev', `rev ${evt.rev} is more than 5 minutes ahead`)
    const held = await this.opts.tracked.get(evt.repo)
    if (!held && chive.length === 0) return
    // A replay, or a commit older than a snapshot we synced: its ops are already accounted for.
    if (held && evt.rev <= held.rev) {
      this.opts.counts.staleIgnored++
      return
    }
    let opened
    let proven
    try {
      opened = openCommit(evt)
      proven = await proveOps(opened, chive, () => true)
    } catch (err) {
      if (!(err instanceof ChainError)) throw err
      verdict(err.reason, err.message)
      // The relay may be hiding the real commit: fetch the truth for a repo we care about.
      if (held || chive.some((op) => OUR_COLLECTIONS.has(collectionOf(op.path)))) {
        this.resync(evt.repo, `commit ${evt.rev} could not be verified: ${err.reason}: ${err.message}`, out)
      }
      return
    }
    // Sync 1.1: the ops, undone on the signed tree, must lead back to the tree we hold.
    let chainBreak: string | null = null
    if (held && held.status !== 'desynchronized') {
      try {
        const before = await invertOps(opened, evt.ops)
        if (before !== evt.prevData) chainBreak = `commit ${evt.rev}: its ops lead back to ${before}, not to its prevData ${evt.prevData ?? 'none'}`
        else if (held.dataCid !== null && before !== held.dataCid) chainBreak = `commit ${evt.rev} (since ${evt.since ?? 'none'}) continues ${before}, we hold ${held.dataCid} at ${held.rev}`
      } catch (err) {
        if (!(err instanceof ChainError)) throw err
        chainBreak = `commit ${evt.rev}: ${err.message}`
      }
    }
    if (chive.length > 0 || !held || chainBreak !== null) {
      if (!(await this.signedBy(evt.repo, opened.signed))) {
        verdict('bad-signature', 'commit signature does not verify')
        if (held) this.resync(evt.repo, `commit ${evt.rev} failed verification: bad-signature`, out)
        return
      }
      if (held) held.unsigned = null
    } else if (held) {
      // Checked later; the chain ties every earlier commit to this one.
      held.unsigned = { rev: evt.rev, signed: detach(opened.signed) }
      this.opts.counts.deferredSignatures++
      this.opts.onUnsigned(evt.repo)
    }
    if (held && chainBreak !== null) this.resync(evt.repo, chainBreak, out)
    const touchesOurs = chive.some((op) => OUR_COLLECTIONS.has(collectionOf(op.path)))
    for (const { op, record } of proven) {
      const uri = `at://${evt.repo}/${op.path}`
      const collection = collectionOf(op.path)
      if (!OUR_COLLECTIONS.has(collection)) {
        const cid = op.action === 'delete' ? null : (op.cid?.toString() ?? null)
        out.push({ kind: 'subject', uri, repo: evt.repo, collection, rev: evt.rev, seq: evt.seq, action: op.action, cid })
        continue
      }
      if (op.action === 'delete' || record === null) {
        out.push({ kind: 'delete', uri, collection: collection as Collection, repo: evt.repo, rev: evt.rev, seq: evt.seq })
        continue
      }
      const effect = recordEffect(
        this.opts.lexicons,
        { uri, repo: evt.repo, collection: collection as Collection, rev: evt.rev, seq: evt.seq, cid: op.cid?.toString() ?? '' },
        record,
      )
      if (effect.kind === 'rejection') {
        bump(this.opts.counts.rejected, effect.reason)
        this.opts.log.warn({ uri, seq: evt.seq, reason: effect.reason, detail: effect.detail }, 'record rejected')
      }
      out.push(effect)
    }
    // A repo that has held one of our records is tracked from now on.
    if (held) {
      held.rev = evt.rev
      held.dataCid = opened.data
      out.push({ kind: 'repo', did: evt.repo, rev: evt.rev, dataCid: opened.data })
    } else if (touchesOurs) {
      this.opts.tracked.track(evt.repo, { rev: evt.rev, dataCid: opened.data, status: 'synced', unsigned: null })
      out.push({ kind: 'repo', did: evt.repo, rev: evt.rev, dataCid: opened.data })
    }
  }

  private async signatureCheck(did: string, out: Effect[]): Promise<void> {
    const held = this.opts.tracked.peek(did)
    const pending = held?.unsigned
    if (!held || !pending) return
    if (!(await this.signedBy(did, pending.signed))) {
      bump(this.opts.counts.rejected, 'bad-signature')
      this.resync(did, `commit ${pending.rev} failed its signature check`, out)
    }
    if (held.unsigned === pending) held.unsigned = null
  }

  /** `#sync`: the repo is now at this signed commit. Anything but what we hold means resync. */
  private async sync(evt: SyncEvent, out: Effect[]): Promise<void> {
    if (!isRepoDid(evt.did)) return
    const held = await this.opts.tracked.get(evt.did)
    if (!held) {
      // Not tracked: it matters only if it moves past records we hold (a replayed #sync does not).
      const latest = await this.opts.latestRecordRev(evt.did)
      if (latest === null || evt.rev <= latest) return
    }
    let signed: Record<string, unknown>
    try {
      signed = readSyncCommit(evt)
    } catch (err) {
      bump(this.opts.counts.rejected, 'bad-sync')
      if (held) this.resync(evt.did, `#sync ${evt.rev} could not be read: ${(err as Error).message}`, out)
      return
    }
    if (!(await this.signedBy(evt.did, signed))) {
      bump(this.opts.counts.rejected, 'bad-signature')
      if (held) this.resync(evt.did, `#sync ${evt.rev} failed verification: bad-signature`, out)
      return
    }
    const data = (signed.data as CBOR.CidLink).$link
    if (held && (evt.rev < held.rev || (evt.rev === held.rev && data === held.dataCid))) return
    this.resync(evt.did, held ? `#sync moved the repo to ${evt.rev}, we hold ${held.rev}` : `#sync ${evt.rev} of a repo whose records we hold`, out)
  }

  /** `#identity`: forget the key; a tracked repo whose key changed is resynced. */
  /** The key held before an `#identity`, kept on the event across the retries of its repo. */
  private readonly keyBefore = new WeakMap<IdentityEvent, PublicKey | null>()

  private async identity(evt: IdentityEvent, out: Effect[]): Promise<void> {
    let before = this.keyBefore.get(evt)
    if (before === undefined) {
      before = this.opts.keys.cached(evt.did) ?? null
      this.keyBefore.set(evt, before)
      this.opts.keys.forget(evt.did)
      await this.opts.idResolver.did.cache?.clearEntry(evt.did).catch(() => {})
    }
    out.push({ kind: 'identity', did: evt.did, seq: evt.seq })
    const held = await this.opts.tracked.get(evt.did)
    if (!held || !before) return
    // The new document is fetched without holding a slot (the repo waits for it, parked); a host
    // that keeps failing hands the repo to a resync after INGEST_PARK_MAX_MS.
    const after = this.opts.keys.now(evt.did)
    if (after.alg !== before.alg || !Buffer.from(after.bytes).equals(Buffer.from(before.bytes))) this.resync(evt.did, 'the signing key changed', out)
  }

  private rejectClaim(evt: JetstreamCommitEvent, reason: string, detail: string, out: Effect[]): void {
    bump(this.opts.counts.rejected, reason)
    const uri = `at://${evt.did}/${evt.collection}/${evt.rkey}`
    this.opts.log.warn({ uri, rev: evt.rev, operation: evt.operation, reason, detail }, 'Jetstream event rejected')
    // No rev: a rejected claim is no version of the record, so it must not displace the one served.
    out.push({ kind: 'rejection', uri, collection: evt.collection, repo: evt.did, rev: undefined, cid: evt.cid ?? undefined, seq: evt.seq, reason, detail, record: undefined })
  }

  private proofs(): RecordProofs {
    if (!this.opts.proofs) throw new Error('a Jetstream event without record proofs configured')
    return this.opts.proofs
  }

  private outcome(name: string): void {
    bump(this.proofs().counts.outcomes, name)
  }

  /** Attempts of a Jetstream event whose rev its host did not have yet, kept across retries. */
  private readonly behind = new WeakMap<JetstreamCommitEvent, number>()

  /**
   * A Jetstream commit counts only as its host's signed tree shows it. At the event's rev the
   * tree must hold exactly what the event claims (the CID for a write, nothing for a delete), or
   * the event is forged. A host already past the event's rev shows newer truth, which is what is
   * applied (at the proof's rev, through the record rev guard), never the event's older claim.
   * The event's record body is never read: the record indexed is the proven block.
   */
  private async jetstreamCommit(evt: JetstreamCommitEvent, out: Effect[]): Promise<void> {
    if (!evt.collection.startsWith(CHIVE_PREFIX)) return
    if (!isRepoDid(evt.did)) return this.rejectClaim(evt, 'unsupported-did', `${evt.did}: repos are did:plc or did:web`, out)
    if (revInFuture(evt.rev)) return this.rejectClaim(evt, 'future-rev', `rev ${evt.rev} is more than 5 minutes ahead`, out)
    // The claimed record must be the claimed CID's content: an instance that rewrote one and
    // not the other is caught without asking the host.
    if (evt.cid !== null && evt.record !== undefined && (await contentCid(evt.record)) !== evt.cid) {
      return this.forged(evt, `the event's record is not the content of its CID ${evt.cid}`, out)
    }
    const proof = await this.proofs().prove(evt.did, evt.collection, evt.rkey)
    if (proof === 'no-proof') {
      // The host says "not found" without showing it: a whole-repo sync settles it.
      this.outcome('no-proof')
      this.resync(evt.did, `${evt.collection}/${evt.rkey}: the host answered RecordNotFound without a proof`, out)
      return
    }
    const path = `${evt.collection}/${evt.rkey}`
    if (evt.reconcile) {
      this.outcome('reconciled')
      return this.applyProof(evt, proof, out)
    }
    if (proof.rev < evt.rev) {
      const attempts = (this.behind.get(evt) ?? 0) + 1
      this.behind.set(evt, attempts)
      if (attempts < BEHIND_ATTEMPTS) throw new TransientError('host-behind', `${path}: the host is at ${proof.rev}, the event at ${evt.rev}`)
      return this.forged(evt, `rev ${evt.rev} is not on the repo's host, which is at ${proof.rev}`, out)
    }
    if (proof.rev === evt.rev) {
      const claimed = evt.operation === 'delete' ? null : evt.cid
      const held = proof.found?.cid ?? null
      if (claimed !== held) {
        const shown = held === null ? 'proves the record absent' : `holds ${held}`
        return this.forged(evt, `${evt.operation} of ${claimed ?? 'nothing'} at ${evt.rev}, but the signed tree ${shown}`, out)
      }
      this.outcome('proven')
    } else {
      this.outcome('superseded')
    }
    this.applyProof(evt, proof, out)
  }

  /**
   * The event does not count. The instance may be hiding or bending more of this repo than one
   * event: a whole-repo sync from the host (verified) settles what the repo holds.
   */
  private forged(evt: JetstreamCommitEvent, detail: string, out: Effect[]): void {
    this.outcome('forged')
    this.rejectClaim(evt, 'jetstream-forged', detail, out)
    this.resync(evt.did, `a Jetstream event did not match its host's signed tree: ${detail}`, out)
  }

  private applyProof(evt: JetstreamCommitEvent, proof: RecordProof, out: Effect[]): void {
    const uri = `at://${evt.did}/${evt.collection}/${evt.rkey}`
    const found = proof.found
    if (!OUR_COLLECTIONS.has(evt.collection)) {
      const action = found === null ? 'delete' : evt.operation === 'delete' ? 'update' : evt.operation
      out.push({ kind: 'subject', uri, repo: evt.did, collection: evt.collection, rev: proof.rev, seq: evt.seq, action, cid: found?.cid ?? null })
      return
    }
    const collection = evt.collection as Collection
    if (found === null) {
      out.push({ kind: 'delete', uri, collection, repo: evt.did, rev: proof.rev, seq: evt.seq })
    } else {
      const effect = recordEffect(this.opts.lexicons, { uri, repo: evt.did, collection, rev: proof.rev, seq: evt.seq, cid: found.cid }, found.record)
      if (effect.kind === 'rejection') {
        bump(this.opts.counts.rejected, effect.reason)
        this.opts.log.warn({ uri, seq: evt.seq, reason: effect.reason, detail: effect.detail }, 'record rejected')
      }
      out.push(effect)
    }
    // The proof's commit is the repo's signed position: the repo is tracked from there.
    const held = this.opts.tracked.peek(evt.did)
    if (!held) this.opts.tracked.track(evt.did, { rev: proof.rev, dataCid: proof.data, status: 'synced', unsigned: null })
    else if (held.rev < proof.rev) {
      held.rev = proof.rev
      held.dataCid = proof.data
    } else return
    out.push({ kind: 'repo', did: evt.did, rev: proof.rev, dataCid: proof.data })
  }

  /** Jetstream's account events are unsigned: the account's own host says what its state is. */
  private async jetstreamAccount(evt: JetstreamAccountEvent, out: Effect[]): Promise<void> {
    const host = await this.proofs().hostStatus(evt.did)
    if (host.active !== evt.active || host.status !== evt.status) {
      this.outcome('account-corrected')
      this.opts.log.warn({ did: evt.did, event: { active: evt.active, status: evt.status }, host }, 'Jetstream account event differs from the host; the host is applied')
    }
    this.account({ type: 'account', seq: evt.seq, did: evt.did, active: host.active, status: host.status }, out)
  }

  private async jetstreamSync(evt: JetstreamSyncEvent, out: Effect[]): Promise<void> {
    if (!isRepoDid(evt.did)) return
    const held = await this.opts.tracked.get(evt.did)
    if (held && evt.rev <= held.rev) return
    if (!held) {
      const latest = await this.opts.latestRecordRev(evt.did)
      if (latest === null || evt.rev <= latest) return
    }
    this.resync(evt.did, `#sync moved the repo to ${evt.rev}`, out)
  }

  private account(evt: AccountEvent, out: Effect[]): void {
    if (!evt.active && evt.status !== undefined && RESYNC_STATUSES.has(evt.status)) {
      // The host says its stream of this account is incomplete: catch up, hide nothing.
      if (this.opts.tracked.peek(evt.did) || this.opts.tracked.mayBeTracked(evt.did)) this.resync(evt.did, `#account ${evt.status}`, out)
      return
    }
    out.push({ kind: 'account', did: evt.did, active: evt.active, status: evt.status, seq: evt.seq })
  }
}

type Obj = Record<string, unknown>

/** The CID of a record given in ATProto JSON, or null when it is not a valid ATProto value. */
const contentCid = async (record: unknown): Promise<string | null> => {
  try {
    return (await cidForLex(jsonToLex(record as JsonValue))).toString()
  } catch {
    return null
  }
}

/**
 * A decoded commit that no longer points into its frame: the decoder's bytes and links are views
 * of the socket's read buffer, and one kept view keeps that whole buffer alive.
 */
const detach = (signed: Obj): Obj => {
  const out: Obj = {}
  for (const [k, v] of Object.entries(signed)) {
    out[k] =
      v instanceof CBOR.BytesWrapper ? new CBOR.BytesWrapper(v.buf.slice()) : v instanceof CBOR.CidLinkWrapper ? new CBOR.CidLinkWrapper(v.bytes.slice()) : v
  }
  return out
}

/** The signed commit a `#sync` carries (its CAR holds just the commit block). */
const readSyncCommit = (evt: SyncEvent): Obj => {
  const car = fromUint8Array(evt.blocks)
  const root = car.roots[0]
  if (car.roots.length !== 1 || !root) throw new Error('a #sync CAR has one root')
  const rootLink = root.$link
  for (const entry of car) {
    const cid = new CBOR.CidLinkWrapper(entry.cid.bytes).$link
    if (cid !== rootLink) continue
    const digest = Buffer.from(entry.cid.bytes.subarray(4))
    if (!digest.equals(Buffer.from(createHash256(entry.bytes)))) throw new Error('commit block does not match its CID')
    const signed = CBOR.decode(entry.bytes)
    if (typeof signed !== 'object' || signed === null || (signed as Obj).did !== evt.did || (signed as Obj).rev !== evt.rev || !((signed as Obj).data instanceof CBOR.CidLinkWrapper)) {
      throw new Error('the commit is not this repo at this rev')
    }
    return signed as Obj
  }
  throw new Error('commit block missing')
}

const createHash256 = (bytes: Uint8Array): Buffer => hash('sha256', bytes, 'buffer')
