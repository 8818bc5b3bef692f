import { createHmac, randomUUID } from 'node:crypto'
import type { Logger } from '../lib/log.ts'
import { parseRetryAfter, retryDelay } from '../lib/backoff.ts'
import type { Pool } from '../db/pool.ts'
import { changesAfter, feedBounds, type InviteChange } from '../db/changes.ts'
import type { InviteRow } from '../db/queries.ts'
import { endpointLabel, forgetEndpoints, leaseEndpoint, recordDelivered, recordFailure, registerEndpoints, releaseEndpoint, takeOverEndpoints } from '../db/webhook.ts'
import { FencedError } from '../db/fence.ts'
import { changeMessage } from './fanout.ts'
import { SUBSCRIBE_INVITES } from './subscription.ts'

export const SIGNATURE_HEADER = 'x-chive-signature'
export const IDEMPOTENCY_HEADER = 'idempotency-key'

/**
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the time is signed with the body, so
 * a receiver can refuse old deliveries replayed by whoever captured one.
 */
export const signature = (secret: string, body: string, unixSeconds: number): string =>
  `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`

export interface WebhookOptions {
  pool: Pool
  urls: string[]
  secret: string
  timeoutMs: number
  backoffBaseMs: number
  maxBackoffMs: number
  /** Called back on new feed commits (the fanout's watch); polling covers the rest. */
  watch: (fn: () => void) => () => void
  pollMs: number
  log: Logger
}

/**
 * Delivers the change feed to each configured URL: at least once, in feed order, one change per
 * POST. The outbox is the feed itself (written in the transaction of each change); an endpoint's
 * position moves only after its receiver answered 2xx. A failure is retried (the same change,
 * with the same idempotency key) after a capped, jittered backoff, for as long as it fails: a
 * receiver that is down holds its own endpoint back and nothing else. The ingest leader runs
 * this, under a lease per endpoint in Postgres that it takes over when it becomes leader (a
 * deposed leader that does not know it yet can no longer move a position).
 */
export class WebhookDelivery {
  private readonly opts: WebhookOptions
  private readonly owner = randomUUID()
  private readonly leaseMs: number
  private stopped = false
  private wakers = new Set<() => void>()
  private loops: Promise<void>[] = []
  private unwatch: (() => void) | null = null
  private feedId = ''

  constructor(opts: WebhookOptions) {
    this.opts = opts
    this.leaseMs = opts.timeoutMs * 2 + 10_000
  }

  /** Run by the ingest leader: the endpoints' leases of a predecessor (dead, or deposed) are taken over. */
  async start(): Promise<void> {
    const forgotten = await forgetEndpoints(this.opts.pool, this.opts.urls)
    if (forgotten.length > 0) this.opts.log.info({ endpoints: forgotten.map(endpointLabel) }, 'webhook endpoints no longer configured: forgotten (the change feed is no longer kept for them)')
    if (this.opts.urls.length === 0) return
    this.stopped = false
    await registerEndpoints(this.opts.pool, this.opts.urls)
    await takeOverEndpoints(this.opts.pool, this.opts.urls, this.owner, this.leaseMs)
    this.feedId = (await feedBounds(this.opts.pool)).feedId
    this.unwatch = this.opts.watch(() => this.wakeAll())
    this.loops = this.opts.urls.map((url) => this.run(url))
  }

  private wakeAll(): void {
    for (const w of [...this.wakers]) w()
  }

  /** Waits `ms`, or until new changes are committed, or until stopped. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.wakers.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wakers.add(done)
    })
  }

  private async run(url: string): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step(url)
      } catch (err) {
        // Another replica leads and delivers; this one is being stopped.
        if (err instanceof FencedError) return
        this.opts.log.warn({ endpoint: endpointLabel(url), err: (err as Error).message }, 'webhook delivery step failed; retrying')
        await this.sleep(this.opts.pollMs)
      }
    }
  }

  private async step(url: string): Promise<void> {
    const { pool } = this.opts
    const lease = await leaseEndpoint(pool, url, this.owner, this.leaseMs)
    if (!lease) return this.sleep(this.leaseMs / 4)
    const wait = lease.nextAttemptAt.getTime() - Date.now()
    if (wait > 0) return this.sleep(Math.min(wait, this.leaseMs / 4))
    const page = await changesAfter(pool, lease.position, 50)
    if (page.length === 0) return this.sleep(this.opts.pollMs)
    let attempts = lease.attempts
    for (const change of page) {
      if (this.stopped) return
      if (!change.invite) {
        // For nobody (an unknown or unproven invite): nothing to send, the position moves on.
        if (!(await recordDelivered(pool, url, this.owner, change.id, false))) return
        continue
      }
      const outcome = await this.post(url, change as InviteChange & { invite: InviteRow }, attempts + 1)
      if (outcome.ok) {
        attempts = 0
        if (!(await recordDelivered(pool, url, this.owner, change.id, true))) return
        continue
      }
      const delay = retryDelay(attempts + 1, this.opts.backoffBaseMs, this.opts.maxBackoffMs, outcome.retryAfterMs)
      this.opts.log.warn({ endpoint: endpointLabel(url), seq: change.id, attempt: attempts + 1, error: outcome.error, retryInMs: delay }, 'webhook delivery failed')
      await recordFailure(pool, url, this.owner, outcome.error, delay)
      return
    }
  }

  private async post(url: string, change: InviteChange & { invite: InviteRow }, attempt: number): Promise<{ ok: true } | { ok: false; error: string; retryAfterMs?: number | undefined }> {
    const body = JSON.stringify({ $type: `${SUBSCRIBE_INVITES}#change`, ...changeMessage(change) })
    try {
      const res = await fetch(url, {
        method: 'POST',
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.opts.timeoutMs),
        headers: {
          'content-type': 'application/json',
          [IDEMPOTENCY_HEADER]: `${this.feedId}:${change.id}`,
          [SIGNATURE_HEADER]: signature(this.opts.secret, body, Math.floor(Date.now() / 1000)),
          'x-chive-delivery-attempt': String(attempt),
        },
      })
      await res.body?.cancel().catch(() => {})
      if (res.status >= 200 && res.status < 300) return { ok: true }
      return { ok: false, error: `HTTP ${res.status}`, retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), { maxMs: this.opts.maxBackoffMs }) }
    } catch (err) {
      // fetch says only "fetch failed"; what happened is in its cause.
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      const why = cause?.code ?? cause?.message
      return { ok: false, error: `${(err as Error).name === 'TimeoutError' ? 'timeout' : (err as Error).message}${why ? ` (${why})` : ''}` }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.unwatch?.()
    this.wakeAll()
    await Promise.all(this.loops)
    await Promise.all(this.opts.urls.map((url) => releaseEndpoint(this.opts.pool, url, this.owner).catch(() => {})))
  }
}
