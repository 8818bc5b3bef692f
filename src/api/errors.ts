/** An XRPC error: answered as `{ error, message }` with its HTTP status. */
export class XrpcError extends Error {
  readonly status: number
  readonly error: string
  readonly headers: Record<string, string>
  constructor(status: number, error: string, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.status = status
    this.error = error
    this.headers = headers
  }
}

export const invalidRequest = (message: string) => new XrpcError(400, 'InvalidRequest', message)
export const authRequired = (message: string) => new XrpcError(401, 'AuthenticationRequired', message)
export const forbidden = (message: string) => new XrpcError(403, 'Forbidden', message)
export const notFound = (message: string) => new XrpcError(404, 'NotFound', message)
export const rateLimited = (message: string, retryAfterSeconds: number) =>
  new XrpcError(429, 'RateLimitExceeded', message, { 'retry-after': String(retryAfterSeconds) })

// Errors that mean "the database is not there right now", not "the request was wrong".
export const isDatabaseUnavailable = (err: unknown): boolean => {
  const code = (err as { code?: unknown }).code
  return (
    (typeof code === 'string' && (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|57P0[1-3]|08\d{3})$/.test(code))) ||
    /Connection terminated|timeout exceeded when trying to connect/i.test((err as Error).message ?? '')
  )
}
/** The repo's host could not be asked, or its answer did not prove anything: nothing was changed. */
export const upstreamFailure = (message: string) => new XrpcError(502, 'UpstreamFailure', message)
