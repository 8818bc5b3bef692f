/**
 * Jetstream mode: what an instance withholds. Nothing in Jetstream chains one event to the next,
 * so an event that is never sent cannot be missed from the stream itself. Every tracked repo is
 * compared, once per period, with what its host lists of our collections (and of the subjects we
 * hold of it); each record that differs is handed to the repo's queue as a claim to prove, like
 * any Jetstream event: the proof from the host, not the listing, decides what is applied.
 *
 * The work is spread over the period (a few repos every tick) so that the load on hosts stays
 * flat; a host that does not answer is skipped until the repo's next turn.
 */
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { countTrackedRepos, dueForReconcile, liveRecordsOf, markReconciled } from '../db/reconcile.ts'
import { ACCEPTANCE_NSID, INVITE_NSID } from '../db/effects.ts'
import type { RecordProofs } from '../atproto/record-proof.ts'
import type { JetstreamCommitEvent } from '../sources/events.ts'

export interface ReconcileStatus {
  reposCompared: number
  recordsRequeued: number
  failures: number
}

export interface ReconcilerOptions {
  pool: Pool
  proofs: RecordProofs
  /** Every tracked repo is compared once in this period. */
  periodMs: number
  log: Logger
  /** Hands a claim to the repo's queue, behind the events it already has. */
  enqueue: (did: string, claim: JetstreamCommitEvent) => void
}

const collectionOf = (uri: string): string => uri.split('/')[3] ?? ''
const rkeyOf = (uri: string): string => uri.split('/')[4] ?? ''

export class Reconciler {
  readonly status: ReconcileStatus = { reposCompared: 0, recordsRequeued: 0, failures: 0 }
  private readonly opts: ReconcilerOptions
  private readonly tickMs: number
  private timer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null

  constructor(opts: ReconcilerOptions) {
    this.opts = opts
    this.tickMs = Math.min(60_000, Math.max(100, Math.floor(opts.periodMs / 20)))
  }

  start(): void {
    if (this.timer) return
    this.timer = setInterval(() => {
      this.running ??= this.tick()
        .catch((err: Error) => this.opts.log.warn({ err: err.message }, 'reconciliation tick failed'))
        .finally(() => (this.running = null))
    }, this.tickMs)
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    await this.running
  }

  private async tick(): Promise<void> {
    const total = await countTrackedRepos(this.opts.pool)
    if (total === 0) return
    const batch = Math.ceil((total * this.tickMs) / this.opts.periodMs)
    for (const did of await dueForReconcile(this.opts.pool, batch)) {
      if (!this.timer) return
      try {
        await this.compare(did)
      } catch (err) {
        // Its next turn comes round again; the stream and other repos are not held up.
        this.status.failures++
        this.opts.log.debug({ did, err: (err as Error).message }, 'reconciliation skipped: host did not answer')
      }
      await markReconciled(this.opts.pool, did)
    }
  }

  private async compare(did: string): Promise<void> {
    const held = await liveRecordsOf(this.opts.pool, did)
    const collections = new Set([INVITE_NSID, ACCEPTANCE_NSID, ...[...held.keys()].map(collectionOf)])
    const listed = new Map<string, string>()
    for (const collection of collections) for (const [uri, cid] of await this.opts.proofs.listRecords(did, collection)) listed.set(uri, cid)
    const differs = new Set<string>()
    for (const [uri, cid] of held) if (listed.get(uri) !== cid) differs.add(uri)
    for (const [uri, cid] of listed) if (held.get(uri) !== cid && collections.has(collectionOf(uri))) differs.add(uri)
    this.status.reposCompared++
    for (const uri of differs) {
      const cid = listed.get(uri) ?? null
      this.status.recordsRequeued++
      this.opts.log.warn({ did, uri, held: held.get(uri) ?? null, listed: cid }, 'the stream did not tell of this record; proving it from the host')
      // No rev: whatever the host proves now is newer than nothing, through the record rev guard.
      this.opts.enqueue(did, {
        type: 'jetstream-commit',
        seq: 0,
        did,
        rev: '',
        operation: cid === null ? 'delete' : 'update',
        collection: collectionOf(uri),
        rkey: rkeyOf(uri),
        cid,
        record: undefined,
        reconcile: true,
      })
    }
  }
}
