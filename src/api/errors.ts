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
