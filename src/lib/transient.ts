/** A failure that says nothing about the thing checked (network, identity, database): try again later. */
export class TransientError extends Error {
  readonly reason: string
  readonly retryAfterMs: number | undefined
  /** Settles when a retry may succeed (true) or has no better chance than after a backoff (false). */
  readonly ready: Promise<boolean> | undefined
  constructor(reason: string, message: string, retryAfterMs?: number, ready?: Promise<boolean>) {
    super(message)
    this.reason = reason
    this.retryAfterMs = retryAfterMs
    this.ready = ready
  }
}
