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
