/**
 * What a relay's firehose event means. Tracked repos get full sync 1.1 validation on every
 * commit, Chive ops or not: the ops are inverted on the commit's blocks and must lead back
 * exactly to the tree we hold (chain.ts). Signatures are checked at once for every commit with a
 * Chive op, for every commit of a repo not tracked yet and after any chain break; for the other
 * commits of a tracked repo only the latest is checked, once a second, and until it is the
 * commit moves only the repo's tip in memory (repo-state.ts): an unchecked commit never moves
 * the position stored, nor stays once its check fails.
 */
import { hash } from 'node:crypto'
import * as CBOR from '@atcute/cbor'
import { fromUint8Array } from '@atcute/car'
import { CHIVE_PREFIX, OUR_COLLECTIONS, type Collection, type Effect } from '../db/effects.ts'
import { ChainError, invertOps, openCommit, proveOps } from '../atproto/chain.ts'
import type { CommitEvent, RepoOp, SyncEvent } from '../sources/events.ts'
import { isRepoDid } from '../atproto/keys.ts'
import { revInFuture } from '../atproto/rev.ts'
import { recordEffect } from './record.ts'
import { bump } from '../lib/counts.ts'
import { collectionOf, type Verdicts } from './verdict.ts'

export class FirehoseVerdicts {
  private readonly v: Verdicts

  constructor(shared: Verdicts) {
    this.v = shared
  }

  private reject(evt: CommitEvent, op: RepoOp, reason: string, detail: string, out: Effect[]): void {
    bump(this.v.opts.counts.rejected, reason)
    this.v.opts.log.warn({ repo: evt.repo, path: op.path, seq: evt.seq, reason, detail }, 'op rejected')
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

  async commit(evt: CommitEvent, out: Effect[]): Promise<void> {
    const { counts, states } = this.v.opts
    const chive = evt.ops.filter((op) => op.path.startsWith(CHIVE_PREFIX))
    const verdict = (reason: string, detail: string) => {
      for (const op of chive) this.reject(evt, op, reason, detail, out)
    }
    if (!isRepoDid(evt.repo)) return verdict('unsupported-did', `${evt.repo}: repos are did:plc or did:web`)
    if (revInFuture(evt.rev)) return verdict('future-rev', `rev ${evt.rev} is more than 5 minutes ahead`)
    const held = await states.get(evt.repo)
    if (!held && chive.length === 0) return
    // A replay, or a commit older than a snapshot we synced: its ops are already accounted for.
    if (held && evt.rev <= held.tip.rev) {
      counts.staleIgnored++
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
        this.v.resync(evt.repo, `commit ${evt.rev} could not be verified: ${err.reason}: ${err.message}`, out)
      }
      return
    }
    // Sync 1.1: the ops, undone on the signed tree, must lead back to the tree we hold. Every
    // tracked repo's commits are inverted, desynchronized or not: a break after a resync that
    // finished anywhere (this process, the CLI, a former leader) is caught all the same.
    let chainBreak: string | null = null
    if (held) {
      try {
        const before = await invertOps(opened, evt.ops)
        const tip = held.tip
        if (before !== evt.prevData) chainBreak = `commit ${evt.rev}: its ops lead back to ${before}, not to its prevData ${evt.prevData ?? 'none'}`
        else if (tip.dataCid !== null && before !== tip.dataCid) chainBreak = `commit ${evt.rev} (since ${evt.since ?? 'none'}) continues ${before}, we hold ${tip.dataCid} at ${tip.rev}`
      } catch (err) {
        if (!(err instanceof ChainError)) throw err
        chainBreak = `commit ${evt.rev}: ${err.message}`
      }
    }
    const checkNow = chive.length > 0 || !held || chainBreak !== null
    if (checkNow && !(await this.v.signedBy(evt.repo, opened.signed))) {
      verdict('bad-signature', 'commit signature does not verify')
      if (held) this.v.resync(evt.repo, `commit ${evt.rev} failed verification: bad-signature`, out)
      return
    }
    if (held && chainBreak !== null) this.v.resync(evt.repo, chainBreak, out)
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
        this.v.opts.lexicons,
        { uri, repo: evt.repo, collection: collection as Collection, rev: evt.rev, seq: evt.seq, cid: op.cid?.toString() ?? '' },
        record,
      )
      if (effect.kind === 'rejection') {
        bump(counts.rejected, effect.reason)
        this.v.opts.log.warn({ uri, seq: evt.seq, reason: effect.reason, detail: effect.detail }, 'record rejected')
      }
      out.push(effect)
    }
    const at = { rev: evt.rev, dataCid: opened.data }
    if (!held) {
      // A repo that holds any Chive record (an invite, an acceptance, or a subject one may point
      // at) is tracked from this signed commit on: its later commits are inverted like any other.
      states.track(evt.repo, at, out)
    } else if (checkNow) {
      states.advanceSigned(evt.repo, held, at, out)
    } else {
      // Checked later; the chain ties every earlier commit to this one.
      states.holdUnsigned(evt.repo, held, at, detach(opened.signed))
      counts.deferredSignatures++
    }
  }

  /** The deferred check of a repo's tip: confirmed, or rolled back and the repo resynced. */
  async signatureCheck(did: string, out: Effect[]): Promise<void> {
    const { states } = this.v.opts
    const held = states.peek(did)
    const pending = held?.unsigned
    if (!held || !pending) return
    const ok = await this.v.signedBy(did, pending)
    // A snapshot may have replaced the tip while the key was fetched.
    if (held.unsigned !== pending) return
    if (ok) return states.confirmSigned(did, held, out)
    bump(this.v.opts.counts.rejected, 'bad-signature')
    const rev = held.tip.rev
    states.rollBack(did, held)
    this.v.resync(did, `commit ${rev} failed its signature check`, out)
  }

  /** `#sync`: the repo is now at this signed commit. Anything but what we hold means resync. */
  async sync(evt: SyncEvent, out: Effect[]): Promise<void> {
    if (!isRepoDid(evt.did)) return
    // A #sync from the future would only make us fetch what its host cannot have yet.
    if (revInFuture(evt.rev)) return bump(this.v.opts.counts.rejected, 'future-rev')
    const held = await this.v.opts.states.get(evt.did)
    if (!held) {
      // Not tracked: it matters only if it moves past records we hold (a replayed #sync does not).
      const latest = await this.v.opts.latestRecordRev(evt.did)
      if (latest === null || evt.rev <= latest) return
    }
    let signed: Record<string, unknown>
    try {
      signed = readSyncCommit(evt)
    } catch (err) {
      bump(this.v.opts.counts.rejected, 'bad-sync')
      if (held) this.v.resync(evt.did, `#sync ${evt.rev} could not be read: ${(err as Error).message}`, out)
      return
    }
    if (!(await this.v.signedBy(evt.did, signed))) {
      bump(this.v.opts.counts.rejected, 'bad-signature')
      if (held) this.v.resync(evt.did, `#sync ${evt.rev} failed verification: bad-signature`, out)
      return
    }
    const data = (signed.data as CBOR.CidLink).$link
    if (held && (evt.rev < held.tip.rev || (evt.rev === held.tip.rev && data === held.tip.dataCid))) return
    this.v.resync(evt.did, held ? `#sync moved the repo to ${evt.rev}, we hold ${held.tip.rev}` : `#sync ${evt.rev} of a repo whose records we hold`, out)
  }
}

type Obj = Record<string, unknown>

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
