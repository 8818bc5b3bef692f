/**
 * The one routing rule, for every source: an event goes to its repo's queue (repo-queue.ts) when
 * its repo is tracked or already has events queued (per-repo order), or when it touches a Chive
 * record; everything else is done as soon as it is read, with at most an effect that needs no
 * repo order. On a relay's firehose that is the vast majority of frames, and it costs one Bloom
 * filter probe (repo-state.ts), no I/O.
 */
import { CHIVE_PREFIX, type Effect } from '../db/effects.ts'
import type { RepoKeys } from '../atproto/keys.ts'
import type { RepoEvent, StreamEvent } from '../sources/events.ts'
import type { Checkpoint } from './checkpoint.ts'
import type { Mark } from './low-water-mark.ts'
import type { QueuedJob, RepoQueues } from './repo-queue.ts'
import type { RepoStates } from './repo-state.ts'
import { asksForResync } from './verdict.ts'

export interface Job extends QueuedJob {
  event: RepoEvent
  /** The event's place in the low-water mark; null for events that hold no stream position. */
  mark: Mark | null
}

export interface RouterDeps {
  states: RepoStates
  queues: RepoQueues<Job>
  checkpoint: Checkpoint
  keys: RepoKeys
}

const hasChiveOp = (ops: readonly { path: string }[]): boolean => {
  for (const op of ops) if (op.path.startsWith(CHIVE_PREFIX)) return true
  return false
}

export class Router {
  private readonly deps: RouterDeps

  constructor(deps: RouterDeps) {
    this.deps = deps
  }

  route(event: StreamEvent, bytes: number): void {
    const did = event.type === 'commit' ? event.repo : event.did
    const ordered = this.deps.states.mayBeTracked(did) || this.deps.queues.has(did)
    switch (event.type) {
      case 'commit':
        if (ordered || hasChiveOp(event.ops)) return this.queue(did, event, bytes)
        return this.deps.checkpoint.marks.seen(event.seq)
      case 'jetstream-commit':
        if (event.collection.startsWith(CHIVE_PREFIX)) return this.queue(did, event, bytes)
        return this.deps.checkpoint.marks.seen(event.seq)
      case 'sync':
      case 'jetstream-sync':
        return this.queue(did, event, bytes)
      case 'identity':
        if (ordered) return this.queue(did, event, bytes)
        // Not a repo whose chain we follow: forget its key and document, nothing to compare.
        void this.deps.keys.forget(did)
        return this.direct(event.seq, [{ kind: 'identity', did, seq: event.seq }])
      case 'account':
        if (ordered) return this.queue(did, event, bytes)
        // A host that says its stream of the account is incomplete hides nothing of ours.
        if (asksForResync(event)) return this.direct(event.seq, [])
        return this.direct(event.seq, [{ kind: 'account', did, active: event.active, status: event.status, seq: event.seq }])
      case 'jetstream-account':
        // Unsigned and sent for every account: applied only to repos we hold, as their own host
        // states them (verdict-jetstream), so a forged takedown hides nothing.
        if (ordered) return this.queue(did, event, bytes)
        return this.deps.checkpoint.marks.seen(event.seq)
    }
  }

  private queue(did: string, event: StreamEvent, bytes: number): void {
    this.deps.queues.push(did, { event, mark: this.deps.checkpoint.marks.open(event.seq), bytes })
  }

  /** Effects that need no repo order (the repo has nothing queued), and the seq is done. */
  private direct(seq: number, effects: Effect[]): void {
    for (const e of effects) this.deps.checkpoint.push(e)
    this.deps.checkpoint.marks.seen(seq)
  }
}
