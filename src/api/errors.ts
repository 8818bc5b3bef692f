/** An XRPC error: answered as `{ error, message }` with its HTTP status. */
export class XrpcError extends Error {
  readonly status: number
  readonly error: string
  constructor(status: number, error: string, message: string) {
    super(message)
    this.status = status
    this.error = error
  }
}

export const invalidRequest = (message: string) => new XrpcError(400, 'InvalidRequest', message)
export const authRequired = (message: string) => new XrpcError(401, 'AuthenticationRequired', message)
export const forbidden = (message: string) => new XrpcError(403, 'Forbidden', message)
