import type { PageKey } from '../db/queries.ts'
import { invalidRequest } from './errors.ts'

// Opaque to clients: base64url of "<sort micros>|<uri>".
export const encodeCursor = (key: PageKey): string =>
  Buffer.from(`${key.sortMicros.toString()}|${key.uri}`, 'utf8').toString('base64url')

export const decodeCursor = (cursor: string): PageKey => {
  if (cursor.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalidRequest('malformed cursor')
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  const bar = text.indexOf('|')
  const micros = text.slice(0, bar)
  const uri = text.slice(bar + 1)
  if (bar < 1 || !/^-?\d{1,17}$/.test(micros) || !uri.startsWith('at://')) throw invalidRequest('malformed cursor')
  return { sortMicros: BigInt(micros), uri }
}
