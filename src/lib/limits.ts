import { Lru } from './lru.ts'

/** At most `limit` tasks at once per key; the rest wait in order. */
export class KeyedLimiter {
  private readonly active = new Map<string, number>()
  private readonly waiting = new Map<string, (() => void)[]>()
  private readonly limit: number
  constructor(limit: number) {
    this.limit = limit
  }

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    if ((this.active.get(key) ?? 0) >= this.limit) {
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(key) ?? []
        queue.push(resolve)
        this.waiting.set(key, queue)
      })
    }
    this.active.set(key, (this.active.get(key) ?? 0) + 1)
    try {
      return await task()
    } finally {
      const left = (this.active.get(key) ?? 1) - 1
      if (left === 0) this.active.delete(key)
      else this.active.set(key, left)
      const queue = this.waiting.get(key)
      const next = queue?.shift()
      if (queue && queue.length === 0) this.waiting.delete(key)
      next?.()
    }
  }
}

/**
 * At most `perSecond` starts per key, spread evenly: a host is never sent a burst that its
 * rate limiter would answer with 429s.
 */
export class KeyedRateLimiter {
  private readonly next = new Map<string, number>()
  private readonly intervalMs: number
  constructor(perSecond: number) {
    this.intervalMs = 1000 / perSecond
  }

  /** Resolves when the caller may start. */
  async take(key: string): Promise<void> {
    const now = Date.now()
    const slot = Math.max(now, this.next.get(key) ?? 0)
    this.next.set(key, slot + this.intervalMs)
    if (slot > now) await new Promise((r) => setTimeout(r, slot - now))
  }

  /** Holds every later start for `key` until `ms` from now. */
  pause(key: string, ms: number): void {
    this.next.set(key, Math.max(this.next.get(key) ?? 0, Date.now() + ms))
  }
}

/**
 * Counts per key in fixed windows (a failed sign-in per address, a call per caller, a connection
 * attempt per address), in memory bounded in keys: the least recently counted go first.
 */
export class WindowCounter {
  private readonly windows: Lru<string, { count: number; resetAt: number }>
  private readonly max: number
  private readonly windowMs: number

  constructor(max: number, windowMs: number, capacity = 100_000) {
    this.max = max
    this.windowMs = windowMs
    this.windows = new Lru(capacity)
  }

  /** Seconds until `key` may go on, once its window holds `max`; 0 while it may. */
  retryAfter(key: string, now = Date.now()): number {
    const entry = this.windows.peek(key)
    if (!entry || entry.resetAt <= now || entry.count < this.max) return 0
    return Math.ceil((entry.resetAt - now) / 1000)
  }

  count(key: string, now = Date.now()): void {
    const entry = this.windows.get(key)
    if (!entry || entry.resetAt <= now) this.windows.set(key, { count: 1, resetAt: now + this.windowMs })
    else entry.count++
  }

  /** `retryAfter`, then `count` when it may go on: the seconds to wait, 0 when this one counts. */
  take(key: string, now = Date.now()): number {
    const wait = this.retryAfter(key, now)
    if (wait === 0) this.count(key, now)
    return wait
  }
}
