import WebSocket from 'ws'
import type { Logger } from '../lib/log.ts'
import { backoff } from '../lib/backoff.ts'

export interface RelayOptions {
  /** ws:// or wss:// base URL of the relay. */
  url: string
  /** Where to resume: the last seq handed to the consumer (replay is inclusive), or null. */
  getCursor: () => number | null
  log: Logger
  /** Frames buffered before the socket is paused: memory stays bounded when we fall behind. */
  highWater?: number
  lowWater?: number
  /** A ping unanswered for this long means a dead connection. */
  heartbeatMs?: number
  /**
   * No frame for this long while we are reading means a stalled relay (the connection may still
   * answer pings): reopen it. RELAY_IDLE_TIMEOUT_MS in the configuration.
   */
  idleTimeoutMs: number
  /** Cap of the reconnect backoff: RELAY_MAX_BACKOFF_MS in the configuration. */
  maxBackoffMs: number
  /** Where a connection goes, given the cursor: subscribeRepos on `url` unless told otherwise. */
  endpoint?: (cursor: number | null) => { url: string; protocols?: string[] }
  /** Text messages are the stream (Jetstream's JSON); otherwise only binary frames count. */
  text?: boolean
  /** The server refused the upgrade with this status and body (an XRPC error, say). */
  onRejected?: (status: number, body: string) => void
  /** A connection ended; `opened` says whether it had been established. */
  onClosed?: (opened: boolean) => void
}

export interface RelayStatus {
  connected: boolean
  connects: number
  reconnects: number
  lastConnectedAt: string | null
  lastDisconnectReason: string | null
  nextRetryInMs: number | null
  /** Connections reopened because the relay went silent. */
  stalls: number
  /** Bytes of messages received (frames' payloads), over every connection. */
  bytesReceived: number
  /** The URL of the current (or last) connection. */
  url: string | null
}

const MAX_FRAME_BYTES = 8 * 1024 * 1024

/**
 * A resumable subscription to com.atproto.sync.subscribeRepos. Frames are pulled with
 * `next()`; when the consumer lags, the socket is paused so TCP flow control reaches the relay.
 */
export class RelaySubscription {
  readonly status: RelayStatus = {
    connected: false,
    connects: 0,
    reconnects: 0,
    lastConnectedAt: null,
    lastDisconnectReason: null,
    nextRetryInMs: null,
    stalls: 0,
    bytesReceived: 0,
    url: null,
  }
  private readonly opts: Required<Omit<RelayOptions, 'endpoint' | 'onRejected' | 'onClosed'>> & Pick<RelayOptions, 'endpoint' | 'onRejected' | 'onClosed'>
  private queue: Uint8Array[] = []
  private waiter: ((frame: Uint8Array | null) => void) | null = null
  private ws: WebSocket | null = null
  private paused = false
  private stopped = false
  private failures = 0
  private retryTimer: NodeJS.Timeout | null = null
  private heartbeat: NodeJS.Timeout | null = null
  private idleCheck: NodeJS.Timeout | null = null
  private lastFrameAt = 0

  constructor(opts: RelayOptions) {
    this.opts = { highWater: 500, lowWater: 100, heartbeatMs: 30_000, text: false, ...opts }
  }

  start(): void {
    this.connect()
  }

  /** A frame already received, without waiting: the hot path when the consumer is behind. */
  take(): Uint8Array | undefined {
    const frame = this.queue.shift()
    if (frame && this.paused && this.queue.length <= this.opts.lowWater) {
      this.paused = false
      this.lastFrameAt = Date.now()
      this.ws?.resume()
    }
    return frame
  }

  /** The next frame, or null after `timeoutMs` without one or once stopped. */
  next(timeoutMs: number): Promise<Uint8Array | null> {
    const frame = this.take()
    if (frame) return Promise.resolve(frame)
    if (this.stopped) return Promise.resolve(null)
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null
        resolve(null)
      }, timeoutMs)
      this.waiter = (f) => {
        clearTimeout(timer)
        this.waiter = null
        resolve(f)
      }
    })
  }

  /** Frames received but not yet taken. */
  get buffered(): number {
    return this.queue.length
  }

  stop(): void {
    this.stopped = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.stopHeartbeat()
    this.ws?.terminate()
    this.ws = null
    this.queue = []
    this.waiter?.(null)
  }

  private connect(): void {
    if (this.stopped) return
    this.status.nextRetryInMs = null
    const cursor = this.opts.getCursor()
    const target = this.opts.endpoint?.(cursor) ?? {
      url: `${this.opts.url}/xrpc/com.atproto.sync.subscribeRepos${cursor === null ? '' : `?cursor=${cursor}`}`,
    }
    const ws = new WebSocket(target.url, target.protocols ?? [], { maxPayload: MAX_FRAME_BYTES, handshakeTimeout: 15_000 })
    this.ws = ws
    this.status.url = target.url
    let alive = true
    let openedAt = 0
    let refused: string | null = null
    ws.on('unexpected-response', (req, res) => {
      // An XRPC error before the upgrade (Jetstream's CursorTooOld): its body says why.
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        if (size < 4096) chunks.push(chunk)
        size += chunk.length
      })
      const done = () => {
        const body = Buffer.concat(chunks).toString('utf8').slice(0, 4096)
        refused = `HTTP ${res.statusCode ?? 0}${body ? `: ${body}` : ''}`
        this.opts.onRejected?.(res.statusCode ?? 0, body)
        req.destroy()
        ws.terminate()
      }
      res.once('end', done)
      res.once('error', done)
    })
    ws.on('open', () => {
      openedAt = Date.now()
      this.status.connected = true
      this.status.connects++
      this.status.lastConnectedAt = new Date().toISOString()
      this.opts.log.info({ url: this.status.url ?? this.opts.url, cursor }, 'relay connected')
      this.stopHeartbeat()
      this.lastFrameAt = Date.now()
      this.idleCheck = setInterval(() => {
        // While paused we are the ones not reading: that is back-pressure, not a stall.
        if (this.paused || Date.now() - this.lastFrameAt <= this.opts.idleTimeoutMs) return
        this.opts.log.warn({ url: this.opts.url, idleMs: Date.now() - this.lastFrameAt }, 'relay sent nothing; reconnecting')
        this.status.stalls++
        ws.terminate()
      }, Math.max(50, Math.floor(this.opts.idleTimeoutMs / 4)))
      this.heartbeat = setInterval(() => {
        if (!alive) {
          this.opts.log.warn({ url: this.opts.url }, 'relay heartbeat missed; reconnecting')
          ws.terminate()
          return
        }
        alive = false
        ws.ping()
      }, this.opts.heartbeatMs)
    })
    ws.on('pong', () => {
      alive = true
    })
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      alive = true
      this.lastFrameAt = Date.now()
      this.status.bytesReceived += data.length
      if (isBinary === this.opts.text) return
      if (this.waiter) {
        this.waiter(data)
        return
      }
      this.queue.push(data)
      if (!this.paused && this.queue.length >= this.opts.highWater) {
        this.paused = true
        ws.pause()
      }
    })
    let errored = false
    ws.on('error', (err: Error) => {
      errored = true
      this.status.lastDisconnectReason = refused ?? err.message
    })
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.ws !== ws) return
      this.ws = null
      this.status.connected = false
      this.stopHeartbeat()
      if (refused) this.status.lastDisconnectReason = refused
      // 1006 without an error of this connection's own: the peer went away without a close frame.
      else if (code !== 1006 || !errored) {
        this.status.lastDisconnectReason = `closed ${code}${reason.length ? `: ${reason.toString()}` : ''}`
      }
      // Unread frames are dropped: the next connection resumes from the last seq taken.
      this.queue = []
      this.paused = false
      this.opts.onClosed?.(openedAt > 0)
      if (this.stopped) return
      // Only a connection that held for a while proves the relay healthy again; one that is
      // refused or closed right after an error frame keeps backing off.
      if (openedAt > 0 && Date.now() - openedAt > 10_000) this.failures = 0
      this.scheduleReconnect()
    })
  }

  private scheduleReconnect(): void {
    this.failures++
    this.status.reconnects++
    const delay = backoff(this.failures, 250, this.opts.maxBackoffMs)
    this.status.nextRetryInMs = delay
    this.opts.log.warn({ url: this.status.url ?? this.opts.url, reason: this.status.lastDisconnectReason, retryInMs: delay }, 'relay disconnected')
    this.retryTimer = setTimeout(() => this.connect(), delay)
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat)
    if (this.idleCheck) clearInterval(this.idleCheck)
    this.heartbeat = null
    this.idleCheck = null
  }
}
