import { MessageFrame } from '@atproto/xrpc-server'
import type { Logger } from '../lib/log.ts'
import type { Pool } from '../db/pool.ts'
import { changesAfter, feedBounds, listenForChanges, type InviteChange } from '../db/changes.ts'
import type { FanoutStatus } from '../api/context.ts'
import type { InviteRow } from '../db/queries.ts'
import { inviteView } from '../api/invites.ts'

/** A live reader of the feed: handed every change of an invite `did` is a party of. */
export interface FeedListener {
  readonly did: string
  receive(change: InviteChange & { invite: InviteRow }, frame: Uint8Array): void
}


/** The body of a `#change` message, as subscriptions and webhooks carry it. */
export const changeMessage = (c: InviteChange & { invite: InviteRow }) => ({
  seq: c.id,
  kind: c.kind,
  time: c.at.toISOString(),
  invite: inviteView(c.invite),
})

/** A `#change` event-stream frame (header + DAG-CBOR body), encoded once for every receiver. */
export const changeFrame = (c: InviteChange & { invite: InviteRow }): Uint8Array =>
  new MessageFrame(changeMessage(c), { type: '#change' }).toBytes()

const PAGE = 500

/**
 * One per process: reads the change feed after its position whenever a commit is notified (and
 * every `pollMs`, for notifications lost while the LISTEN connection was down) and hands each
 * change to the listeners of its parties. Reading is one query per page for all listeners, and
 * a listener is only ever handed a frame: one that cannot keep up is its own business (see
 * subscription.ts), never a wait for the others or for ingest.
 */
export class Fanout {
  private readonly pool: Pool
  private readonly databaseUrl: string
  private readonly schema: string
  private readonly pollMs: number
  private readonly log: Logger
  private readonly byDid = new Map<string, Set<FeedListener>>()
  private readonly watchers = new Set<() => void>()
  private position = 0
  private reading: Promise<void> | null = null
  private again = false
  private stopped = false
  private timer: NodeJS.Timeout | null = null
  private listen: { close(): Promise<void> } | null = null
  private listenRetry: NodeJS.Timeout | null = null
  private readonly stats = { changesRead: 0, framesSent: 0, lastError: null as string | null }

  constructor(opts: { pool: Pool; databaseUrl: string; schema: string; pollMs: number; log: Logger }) {
    this.pool = opts.pool
    this.databaseUrl = opts.databaseUrl
    this.schema = opts.schema
    this.pollMs = opts.pollMs
    this.log = opts.log
  }

  async start(): Promise<void> {
    this.position = (await feedBounds(this.pool)).head
    await this.connect()
    this.timer = setInterval(() => this.wake(), this.pollMs)
    this.timer.unref()
  }

  private async connect(): Promise<void> {
    if (this.stopped) return
    try {
      this.listen = await listenForChanges(this.databaseUrl, this.schema, () => this.wake(), (err) => this.lost(err))
      if (this.stats.lastError !== null) this.log.info('change feed LISTEN connection back')
      // Commits notified while we were away are lost with the connection: read what is there.
      this.wake()
    } catch (err) {
      this.lost(err as Error)
    }
  }

  private lost(err: Error): void {
    this.stats.lastError = err.message
    const had = this.listen
    this.listen = null
    void had?.close()
    if (this.stopped || this.listenRetry) return
    // Once per outage, not once per reconnection attempt.
    if (had) this.log.warn({ err: err.message }, 'change feed LISTEN connection lost; polling until it is back')
    this.listenRetry = setTimeout(() => {
      this.listenRetry = null
      void this.connect()
    }, Math.min(this.pollMs, 1000))
    this.listenRetry.unref()
  }

  /** The highest feed id handed to listeners: a listener added now is handed every later one. */
  get head(): number {
    return this.position
  }

  add(l: FeedListener): void {
    let set = this.byDid.get(l.did)
    if (!set) this.byDid.set(l.did, (set = new Set()))
    set.add(l)
  }

  remove(l: FeedListener): void {
    const set = this.byDid.get(l.did)
    if (!set) return
    set.delete(l)
    if (set.size === 0) this.byDid.delete(l.did)
  }

  /** `fn` runs after each read that found new changes (the webhook worker's wake-up). */
  watch(fn: () => void): () => void {
    this.watchers.add(fn)
    return () => this.watchers.delete(fn)
  }

  get status(): FanoutStatus {
    let listeners = 0
    for (const set of this.byDid.values()) listeners += set.size
    return { listening: this.listen !== null, position: this.position, listeners, ...this.stats }
  }

  /** Reads now; concurrent wake-ups fold into one more read after the current one. */
  wake(): void {
    if (this.stopped) return
    if (this.reading) {
      this.again = true
      return
    }
    this.reading = this.read()
      .catch((err: unknown) => {
        this.stats.lastError = (err as Error).message
        this.log.warn({ err: (err as Error).message }, 'reading the change feed failed; retried at the next poll')
      })
      .finally(() => {
        this.reading = null
        if (this.again) {
          this.again = false
          this.wake()
        }
      })
  }

  private async read(): Promise<void> {
    let found = false
    for (;;) {
      const page = await changesAfter(this.pool, this.position, PAGE)
      for (const change of page) {
        this.position = change.id
        this.stats.changesRead++
        found = true
        if (change.invite) this.hand(change as InviteChange & { invite: InviteRow })
      }
      if (page.length < PAGE || this.stopped) break
    }
    if (found) for (const fn of this.watchers) fn()
  }

  private hand(change: InviteChange & { invite: InviteRow }): void {
    let frame: Uint8Array | undefined
    for (const did of change.parties) {
      const set = this.byDid.get(did)
      if (!set) continue
      frame ??= changeFrame(change)
      // A listener may remove itself (cut as too slow) while we iterate: iterate a copy.
      for (const l of [...set]) {
        // One listener's failure must not cost the others this change (the position has moved).
        try {
          l.receive(change, frame)
          this.stats.framesSent++
        } catch (err) {
          this.stats.lastError = (err as Error).message
          this.log.error({ err, seq: change.id }, 'handing a change to a subscriber failed')
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    if (this.listenRetry) clearTimeout(this.listenRetry)
    await this.reading
    await this.listen?.close()
    this.listen = null
  }
}
