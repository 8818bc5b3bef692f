/**
 * Node fires a timer set beyond this at once (and warns): a delay above it would turn a wait
 * into a hot loop, so every delay computed here stays under it.
 */
export const TIMER_MAX_MS = 2 ** 31 - 1

/**
 * Capped exponential backoff with jitter: between half and all of base·2^(attempt-1), at most
 * `maxMs`. The jitter keeps many clients that failed together from coming back together; the
 * lower half keeps each retry from being too early. `attempt` counts from 1.
 */
export const backoff = (attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number => {
  const ceiling = Math.min(maxMs, TIMER_MAX_MS, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)))
  return Math.round(ceiling / 2 + (random() * ceiling) / 2)
}

/** The backoff, but never sooner than the server asked (`retryAfterMs`), and still at most `maxMs`. */
export const retryDelay = (attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number, random?: () => number): number =>
  Math.min(maxMs, TIMER_MAX_MS, Math.max(retryAfterMs ?? 0, backoff(attempt, baseMs, maxMs, random)))

export interface RetryAfterOptions {
  /**
   * The longest wait the caller will honour: whoever sends the header is not trusted to choose
   * how long we stay away (`Retry-After: 99999999` is over three years).
   */
  maxMs: number
  now?: number
}

/**
 * A `Retry-After` header in milliseconds from `now`: delay-seconds or an HTTP-date (one in the
 * past is 0), at most `maxMs`. Undefined when absent or not understood, so the caller's own
 * backoff applies.
 */
export const parseRetryAfter = (header: string | null | undefined, { maxMs, now = Date.now() }: RetryAfterOptions): number | undefined => {
  if (header == null) return undefined
  const raw = header.trim()
  const cap = Math.max(0, Math.min(maxMs, TIMER_MAX_MS))
  if (/^\d+(\.\d+)?$/.test(raw)) return Math.min(cap, Math.round(Number(raw) * 1000))
  // Every HTTP-date form starts with a day name; Date.parse alone reads "1" or "-5" as years.
  if (!/^[a-z]{3}/i.test(raw)) return undefined
  const at = Date.parse(raw)
  return Number.isNaN(at) ? undefined : Math.min(cap, Math.max(0, at - now))
}
