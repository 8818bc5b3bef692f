import { Frame } from '@atproto/xrpc-server'
import WebSocket from 'ws'
import { BEARER_PROTOCOL, SUBSCRIBE_INVITES } from '../../src/push/subscription.ts'
import { waitFor } from './harness.ts'

export interface Change {
  seq: number
  kind: string
  time: string
  invite: Record<string, unknown> & { uri: string; state: string }
}

export interface Received {
  type: string | undefined
  body: Record<string, unknown>
  error?: string | undefined
}

/** A real WebSocket subscriber of subscribeInvites, decoding every frame it receives. */
export class PushClient {
  readonly ws: WebSocket
  readonly frames: Received[] = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number; reason: string }>
  closedWith: { code: number; reason: string } | undefined

  constructor(
    base: string,
    opts: { token?: string | undefined; browser?: boolean; params?: Record<string, string | number>; autoPong?: boolean; forwardedFor?: string } = {},
  ) {
    const url = new URL(`/xrpc/${SUBSCRIBE_INVITES}`, base.replace(/^http/, 'ws'))
    for (const [k, v] of Object.entries(opts.params ?? {})) url.searchParams.set(k, String(v))
    const browser = opts.browser === true && opts.token !== undefined
    this.ws = new WebSocket(url, browser ? [BEARER_PROTOCOL, opts.token as string] : [], {
      headers: {
        ...(!browser && opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {}),
        ...(opts.forwardedFor ? { 'x-forwarded-for': opts.forwardedFor } : {}),
      },
      autoPong: opts.autoPong ?? true,
    })
    this.ws.on('message', (data: Buffer) => {
      const frame = Frame.fromBytes(new Uint8Array(data))
      if (frame.isError()) this.frames.push({ type: undefined, body: frame.body as Record<string, unknown>, error: frame.code })
      else this.frames.push({ type: frame.isMessage() ? frame.type : undefined, body: frame.body as Record<string, unknown> })
    })
    this.ws.on('error', () => {})
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    })
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString() }
        resolve(this.closedWith)
      }),
    )
    this.opened.catch(() => {})
  }

  get changes(): Change[] {
    return this.frames.filter((f) => f.type === '#change').map((f) => f.body as unknown as Change)
  }

  get errors(): string[] {
    return this.frames.flatMap((f) => (f.error ? [f.error] : []))
  }

  /** Waits for a change matching `check` (of those not yet seen when asked, if `after` is given). */
  waitForChange(check: (c: Change) => boolean, what: string, timeoutMs = 15_000): Promise<Change> {
    return waitFor(async () => this.changes.find(check), what, timeoutMs)
  }

  async waitForError(timeoutMs = 15_000): Promise<string> {
    return waitFor(async () => this.errors[0], 'an error frame', timeoutMs)
  }

  refresh(token: string): void {
    this.ws.send(JSON.stringify({ $type: `${SUBSCRIBE_INVITES}#refresh`, token }))
  }

  close(): Promise<unknown> {
    this.ws.close()
    return this.closed
  }
}
