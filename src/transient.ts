/** A failure that says nothing about the thing checked (network, identity, database): try again later. */
export class TransientError extends Error {
  readonly reason: string
  readonly retryAfterMs: number | undefined
  constructor(reason: string, message: string, retryAfterMs?: number) {
    super(message)
    this.reason = reason
    this.retryAfterMs = retryAfterMs
  }
}
