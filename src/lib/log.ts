import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * Credentials never reach the log, whatever a caller passes in: service-auth tokens travel in
 * `Authorization` and, from browsers opening a subscription, in `Sec-WebSocket-Protocol`.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["sec-websocket-protocol"]',
  'headers.authorization',
  'headers["sec-websocket-protocol"]',
  'token',
  'secret',
]

export const createLogger = (level: string, destination?: pino.DestinationStream): Logger =>
  pino({ level, base: { service: 'chive-collab-indexer' }, redact: REDACTED_PATHS }, destination)
