/**
 * A resumable subscription to one or more Jetstream instances, for the low-bandwidth mode: only
 * `pub.chive.*` commits (plus every identity and account event, which Jetstream sends to all)
 * instead of the whole firehose. The socket handling (back-pressure, heartbeats, stalls, capped
 * backoff) is the relay subscription's; this file chooses where each connection goes.
 *
 * - Several URLs: a connection that fails or ends moves to the next, resuming from the same
 *   `time_us` cursor (microseconds, comparable across instances).
 * - v2 (`network.bsky.jetstream.subscribeEvents`, `xrpc.v1.json`) is tried first on each URL;
 *   an instance that does not offer it is spoken to in v1 (`/subscribe`) from then on.
 * - Every connection resumes `rewindMs` before the cursor: Jetstream is at-least-once, instances
 *   stamp the same event a little differently, and the rev guard absorbs the duplicates.
 * - A cursor older than the instances' retention (v2 says `CursorTooOld`; v1 silently starts at
 *   its oldest event) is a gap: the indexer goes live and a full backfill covers the rest.
 */
import type { Logger } from '../lib/log.ts'
import { RelaySubscription, type RelayStatus } from './relay.ts'
import type { JetstreamVersion } from './jetstream-message.ts'

export const JETSTREAM_COLLECTIONS = 'pub.chive.*'
const V2_PATH = '/xrpc/network.bsky.jetstream.subscribeEvents'
const V2_PROTOCOL = 'xrpc.v1.json'

export interface JetstreamOptions {
  /** ws(s):// base URLs of Jetstream instances, in order of preference. */
  urls: string[]
  /** The position of the last event read (time_us), or null for a live tail. */
  getCursor: () => number | null
  /** The cursor cannot be resumed (older than retention): the caller forgets it and backfills. */
  onCursorTooOld: (reason: string) => void
  rewindMs: number
  retentionMs: number
  log: Logger
  idleTimeoutMs: number
  maxBackoffMs: number
}

export class JetstreamSubscription {
  private readonly opts: JetstreamOptions
  private readonly socket: RelaySubscription
  private index = 0
  /** Instances found not to offer v2. */
  private readonly v1Only = new Set<string>()
  private attempt: { base: string; version: JetstreamVersion } | null = null
  private tooOld = false
  /** The status of the last refused upgrade, until the connection's end is handled. */
  private refusedWith: number | null = null

  constructor(opts: JetstreamOptions) {
    if (opts.urls.length === 0) throw new Error('no Jetstream URL')
    this.opts = opts
    this.socket = new RelaySubscription({
      url: opts.urls[0] as string,
      getCursor: opts.getCursor,
      log: opts.log,
      text: true,
      idleTimeoutMs: opts.idleTimeoutMs,
      maxBackoffMs: opts.maxBackoffMs,
      endpoint: (cursor) => this.endpoint(cursor),
      onRejected: (status, body) => {
        this.refusedWith = status
        if (status === 400 && /CursorTooOld/.test(body)) this.cursorTooOld(`the instance answered CursorTooOld: ${body.slice(0, 200)}`)
      },
      onClosed: (opened) => this.closed(opened),
    })
  }

  /** The protocol of the connection the messages come from. */
  get version(): JetstreamVersion {
    return this.attempt?.version ?? 'v1'
  }

  get status(): RelayStatus {
    return this.socket.status
  }

  get buffered(): number {
    return this.socket.buffered
  }

  start(): void {
    this.socket.start()
  }

  stop(): void {
    this.socket.stop()
  }

  take(): Uint8Array | undefined {
    return this.socket.take()
  }

  next(timeoutMs: number): Promise<Uint8Array | null> {
    return this.socket.next(timeoutMs)
  }

  /** An error message on the stream (v2's `CursorTooOld` may come as one). */
  reportError(name: string, message: string | undefined): void {
    if (name === 'CursorTooOld') this.cursorTooOld(`the instance reported CursorTooOld: ${message ?? ''}`.trim())
  }

  private cursorTooOld(reason: string): void {
    this.tooOld = true
    this.opts.onCursorTooOld(reason)
  }

  private endpoint(cursor: number | null): { url: string; protocols?: string[] } {
    const base = (this.opts.urls[this.index % this.opts.urls.length] as string).replace(/\/+$/, '')
    let from = cursor
    if (from !== null && Date.now() * 1000 - from > this.opts.retentionMs * 1000) {
      this.cursorTooOld(`the cursor is ${Math.round((Date.now() * 1000 - from) / 3.6e9)} h old, past the ${Math.round(this.opts.retentionMs / 3.6e6)} h Jetstream keeps`)
      from = this.opts.getCursor()
    }
    const resume = from === null ? null : Math.max(1, from - this.opts.rewindMs * 1000)
    const version: JetstreamVersion = this.v1Only.has(base) ? 'v1' : 'v2'
    this.attempt = { base, version }
    const q = new URLSearchParams()
    if (version === 'v2') {
      q.append('collections', JETSTREAM_COLLECTIONS)
      for (const kind of ['commit', 'identity', 'account', 'sync']) q.append('kinds', kind)
    } else {
      q.append('wantedCollections', JETSTREAM_COLLECTIONS)
    }
    // v2 reads a cursor of 1e15 or more as a time_us (below, as its own seq).
    if (resume !== null) q.set('cursor', String(resume))
    const url = `${base}${version === 'v2' ? V2_PATH : '/subscribe'}?${q.toString()}`
    return version === 'v2' ? { url, protocols: [V2_PROTOCOL] } : { url }
  }

  private closed(opened: boolean): void {
    const attempt = this.attempt
    const refusedWith = this.refusedWith
    this.refusedWith = null
    if (!attempt) return
    if (this.tooOld) {
      // Same instance again, live, now that the cursor is forgotten.
      this.tooOld = false
      return
    }
    const noV2 = (refusedWith !== null && refusedWith < 500) || /subprotocol/i.test(this.socket.status.lastDisconnectReason ?? '')
    if (attempt.version === 'v2' && !opened && noV2) {
      // The instance answered, but not as v2: it speaks v1 (a down instance is not marked).
      this.v1Only.add(attempt.base)
      this.opts.log.info({ url: attempt.base, reason: this.socket.status.lastDisconnectReason }, 'Jetstream v2 not offered; using v1')
      return
    }
    if (this.opts.urls.length > 1) {
      this.index = (this.index + 1) % this.opts.urls.length
      this.opts.log.warn({ from: attempt.base, to: this.opts.urls[this.index] }, 'switching Jetstream instance')
    }
  }
}
