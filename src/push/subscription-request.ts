import type { IncomingMessage } from 'node:http'
import type { Lexicons } from '@atproto/lexicon'
import type { InviteRow } from '../db/queries.ts'
import { invalidRequest } from '../api/errors.ts'
import { assertParams, defined } from '../api/params.ts'
import { SUBSCRIBE_INVITES } from '../atproto/lexicons.ts'

/** The subprotocol a browser offers beside its token (`new WebSocket(url, ['bearer', token])`); the one we select. */
export const BEARER_PROTOCOL = 'bearer'

/** What a subscriber asks for: its filter (all given must match), and where its replay starts. */
export interface Filter {
  invitee?: string | undefined
  inviter?: string | undefined
  subjectUri?: string | undefined
}

export const matches = (f: Filter, invite: InviteRow): boolean =>
  (f.invitee === undefined || invite.invitee === f.invitee) &&
  (f.inviter === undefined || invite.inviter === f.inviter) &&
  (f.subjectUri === undefined || invite.subjectUri === f.subjectUri)

const once = (params: URLSearchParams, name: string): string | undefined => {
  const all = params.getAll(name)
  if (all.length > 1) throw invalidRequest(`${name} must be given once`)
  return all[0]
}

export const parseParams = (lexicons: Lexicons, url: URL): Filter & { cursor?: number | undefined } => {
  for (const name of url.searchParams.keys()) {
    if (!['cursor', 'invitee', 'inviter', 'subjectUri'].includes(name)) throw invalidRequest(`unknown parameter: ${name}`)
  }
  const rawCursor = once(url.searchParams, 'cursor')
  if (rawCursor !== undefined && !/^\d{1,15}$/.test(rawCursor)) throw invalidRequest('cursor must be a non-negative integer')
  const params = defined({
    cursor: rawCursor === undefined ? undefined : Number(rawCursor),
    invitee: once(url.searchParams, 'invitee'),
    inviter: once(url.searchParams, 'inviter'),
    subjectUri: once(url.searchParams, 'subjectUri'),
  })
  assertParams(lexicons, SUBSCRIBE_INVITES, params)
  return params
}

/** The token: `Authorization: Bearer` (servers), or the subprotocol after `bearer` (browsers). */
export const tokenOf = (req: IncomingMessage): string | undefined => {
  const header = req.headers.authorization
  if (header !== undefined) return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? ''
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim())
  if (!offered.includes(BEARER_PROTOCOL)) return undefined
  return offered.find((p) => p !== BEARER_PROTOCOL && p !== '')
}