/**
 * What one repo's event means for the index, decided in that repo's order (see repo-queue.ts):
 * what both sources share. The firehose's events are judged in verdict-firehose.ts, Jetstream's
 * in verdict-jetstream.ts, and verdicts.ts hands each event to its judge.
 *
 * The invariant kept here: **only a verdict is a rejection.** A verdict is something the event
 * itself proves wrong: a bad signature, a CAR or op list that does not match its signed tree, an
 * invalid record. Anything else (the DID document cannot be fetched, the database is away) is
 * thrown, and the queue parks the repo and retries; the cursor waits.
 */
import type { Lexicons } from '@atproto/lexicon'
import type { Logger } from '../lib/log.ts'
import type { Effect } from '../db/effects.ts'
import type { AccountEvent, IdentityEvent } from '../sources/events.ts'
import type { RepoKeys } from '../atproto/keys.ts'
import type { PublicKey } from '../atproto/signature.ts'
import type { RecordProofs } from '../atproto/record-proof.ts'
import type { RepoStates } from './repo-state.ts'

export interface RepoEventCounts {
  staleIgnored: number
  resyncsRequested: number
  rejected: Record<string, number>
  deferredSignatures: number
}

export interface RepoEventsOptions {
  lexicons: Lexicons
  keys: RepoKeys
  states: RepoStates
  log: Logger
  counts: RepoEventCounts
  /** The newest rev of the records the index holds of a repo it may not track; null when none. */
  latestRecordRev: (did: string) => Promise<string | null>
  /** Record proofs from repos' hosts: the Jetstream mode's verification. */
  proofs?: RecordProofs | undefined
}

export const collectionOf = (path: string): string => {
  const slash = path.indexOf('/')
  return slash === -1 ? path : path.slice(0, slash)
}

/** Statuses that say the host's stream is incomplete, not that the account is gone. */
const RESYNC_STATUSES: ReadonlySet<string> = new Set(['desynchronized', 'throttled'])

/** An `#account` that hides nothing: its host says only that its stream of the account is incomplete. */
export const asksForResync = (evt: { active: boolean; status: string | undefined }): boolean =>
  !evt.active && evt.status !== undefined && RESYNC_STATUSES.has(evt.status)

/** What both sources' judges share: the options, resync requests, keys, account events. */
export class Verdicts {
  readonly opts: RepoEventsOptions

  constructor(opts: RepoEventsOptions) {
    this.opts = opts
  }

  /** The repo is resynced from its host (asked for in the batch that carries `out`). */
  resync(did: string, reason: string, out: Effect[]): void {
    this.opts.counts.resyncsRequested++
    this.opts.log.warn({ did, reason }, 'repo out of sync; resync queued')
    this.opts.states.desynchronize(did, reason, out)
  }

  /** The repo's key; a signature that fails is retried once with a freshly fetched key. */
  async signedBy(did: string, signed: Record<string, unknown>): Promise<boolean> {
    // now(): the key is known by the time a repo's job runs (fetched while parked, holding no slot).
    return this.opts.keys.verifies(did, signed, this.opts.keys.now(did))
  }

  /** The key held before an `#identity`, kept on the event across the retries of its repo. */
  private readonly keyBefore = new WeakMap<IdentityEvent, PublicKey | null>()

  /** `#identity`: forget the key; a tracked repo whose key changed is resynced. */
  async identity(evt: IdentityEvent, out: Effect[]): Promise<void> {
    let before = this.keyBefore.get(evt)
    if (before === undefined) {
      before = this.opts.keys.cached(evt.did) ?? null
      this.keyBefore.set(evt, before)
      await this.opts.keys.forget(evt.did)
    }
    out.push({ kind: 'identity', did: evt.did, seq: evt.seq })
    const held = await this.opts.states.get(evt.did)
    if (!held || !before) return
    // The new document is fetched without holding a slot (the repo waits for it, parked); a host
    // that keeps failing hands the repo to a resync after INGEST_PARK_MAX_MS.
    const after = this.opts.keys.now(evt.did)
    if (after.alg !== before.alg || !Buffer.from(after.bytes).equals(Buffer.from(before.bytes))) this.resync(evt.did, 'the signing key changed', out)
  }

  account(evt: AccountEvent, out: Effect[]): void {
    if (asksForResync(evt)) {
      // The host says its stream of this account is incomplete: catch up, hide nothing.
      if (this.opts.states.peek(evt.did) || this.opts.states.mayBeTracked(evt.did)) this.resync(evt.did, `#account ${evt.status}`, out)
      return
    }
    out.push({ kind: 'account', did: evt.did, active: evt.active, status: evt.status, seq: evt.seq })
  }
}
