/**
 * What a Jetstream event means. Jetstream's events are unsigned: a commit counts only as its
 * repo's host's signed tree shows it (record-proof.ts), an account event only as the host
 * states the account, and the proof's commit is the repo's signed position.
 */
import { cidForLex } from '@atproto/lex-cbor'
import { jsonToLex, type JsonValue } from '@atproto/lex-json'
import { CHIVE_PREFIX, type Effect } from '../db/effects.ts'
import type { JetstreamAccountEvent, JetstreamCommitEvent, JetstreamSyncEvent } from '../sources/events.ts'
import { isRepoDid } from '../atproto/keys.ts'
import { revInFuture } from '../atproto/rev.ts'
import { proofEffect } from './proof-effects.ts'
import { bump } from '../lib/counts.ts'
import { TransientError } from '../lib/transient.ts'
import type { RecordProof, RecordProofs } from '../atproto/record-proof.ts'
import type { Verdicts } from './verdict.ts'

/** Retries of a Jetstream event whose rev its host does not have, before it is called forged. */
const BEHIND_ATTEMPTS = 3

export class JetstreamVerdicts {
  private readonly v: Verdicts

  constructor(shared: Verdicts) {
    this.v = shared
  }

  private rejectClaim(evt: JetstreamCommitEvent, reason: string, detail: string, out: Effect[]): void {
    bump(this.v.opts.counts.rejected, reason)
    const uri = `at://${evt.did}/${evt.collection}/${evt.rkey}`
    this.v.opts.log.warn({ uri, rev: evt.rev, operation: evt.operation, reason, detail }, 'Jetstream event rejected')
    // No rev: a rejected claim is no version of the record, so it must not displace the one served.
    out.push({ kind: 'rejection', uri, collection: evt.collection, repo: evt.did, rev: undefined, cid: evt.cid ?? undefined, seq: evt.seq, reason, detail, record: undefined })
  }

  private proofs(): RecordProofs {
    if (!this.v.opts.proofs) throw new Error('a Jetstream event without record proofs configured')
    return this.v.opts.proofs
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
  async commit(evt: JetstreamCommitEvent, out: Effect[]): Promise<void> {
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
      this.v.resync(evt.did, `${evt.collection}/${evt.rkey}: the host answered RecordNotFound without a proof`, out)
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
    this.v.resync(evt.did, `a Jetstream event did not match its host's signed tree: ${detail}`, out)
  }

  private applyProof(evt: JetstreamCommitEvent, proof: RecordProof, out: Effect[]): void {
    const effect = proofEffect(this.v.opts.lexicons, evt, proof)
    if (effect.kind === 'rejection') {
      bump(this.v.opts.counts.rejected, effect.reason)
      this.v.opts.log.warn({ uri: effect.uri, seq: evt.seq, reason: effect.reason, detail: effect.detail }, 'record rejected')
    }
    out.push(effect)
    // The proof's commit is the repo's signed position: the repo is tracked from there.
    const states = this.v.opts.states
    const held = states.peek(evt.did)
    const at = { rev: proof.rev, dataCid: proof.data }
    if (!held) states.track(evt.did, at, out)
    else if (held.signed.rev < proof.rev) states.advanceSigned(evt.did, held, at, out)
  }

  /** Jetstream's account events are unsigned: the account's own host says what its state is. */
  async account(evt: JetstreamAccountEvent, out: Effect[]): Promise<void> {
    const host = await this.proofs().hostStatus(evt.did)
    if (host.active !== evt.active || host.status !== evt.status) {
      this.outcome('account-corrected')
      this.v.opts.log.warn({ did: evt.did, event: { active: evt.active, status: evt.status }, host }, 'Jetstream account event differs from the host; the host is applied')
    }
    this.v.account({ type: 'account', seq: evt.seq, did: evt.did, active: host.active, status: host.status }, out)
  }

  async sync(evt: JetstreamSyncEvent, out: Effect[]): Promise<void> {
    if (!isRepoDid(evt.did)) return
    // A #sync from the future would only make us fetch what its host cannot have yet.
    if (revInFuture(evt.rev)) return bump(this.v.opts.counts.rejected, 'future-rev')
    const held = await this.v.opts.states.get(evt.did)
    if (held && evt.rev <= held.signed.rev) return
    if (!held) {
      const latest = await this.v.opts.latestRecordRev(evt.did)
      if (latest === null || evt.rev <= latest) return
    }
    this.v.resync(evt.did, `#sync moved the repo to ${evt.rev}`, out)
  }
}

/** The CID of a record given in ATProto JSON, or null when it is not a valid ATProto value. */
const contentCid = async (record: unknown): Promise<string | null> => {
  try {
    return (await cidForLex(jsonToLex(record as JsonValue))).toString()
  } catch {
    return null
  }
}
