import { expect } from 'vitest'
import { lexicons, waitFor, type ApiResponse, type Harness } from './harness.ts'

export const ADMIN_NS = 'pub.chive.collabIndexer.admin'
export const ADMIN_PASSWORD = 'correct horse battery staple'

export const basic = (password: string, user = 'moderator'): string =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

export interface AdminInvite {
  uri: string
  inviter: string
  invitee: string
  state: string
  verification: string
  served: boolean
  message?: string
  takedown?: { reason: string; actor: string; at: string }
  inviterBlock?: { reason: string; actor: string; at: string }
}

export interface AuditEventView {
  id: number
  subject: string
  event: string
  reason?: string
  message?: string
  seq?: number
  rev?: string
  actor?: string
  actorKind?: string
  at: string
}

/** Raw calls of the admin XRPC methods with a given Authorization header. */
export const adminCall = async <T = Record<string, unknown>>(
  h: Harness,
  name: string,
  opts: { authorization?: string | undefined; params?: Record<string, string | number>; body?: Record<string, unknown> } = {},
): Promise<ApiResponse<T>> => {
  const url = new URL(`/xrpc/${ADMIN_NS}.${name}`, h.service.url)
  for (const [k, v] of Object.entries(opts.params ?? {})) url.searchParams.set(k, String(v))
  const headers: Record<string, string> = {}
  if (opts.authorization) headers.authorization = opts.authorization
  if (opts.body) headers['content-type'] = 'application/json'
  const res = await fetch(url, { method: opts.body ? 'POST' : 'GET', headers, body: opts.body && JSON.stringify(opts.body) })
  return { status: res.status, body: (await res.json()) as T }
}

/** Typed, lexicon-checked admin calls signed in with the admin password. */
export const moderator = (h: Harness, authorization = basic(ADMIN_PASSWORD)) => {
  const ok = async <T>(name: string, opts: { params?: Record<string, string | number>; body?: Record<string, unknown> }): Promise<T> => {
    const res = await adminCall<T>(h, name, { ...opts, authorization })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    lexicons.assertValidXrpcOutput(`${ADMIN_NS}.${name}`, res.body)
    return res.body
  }
  const search = (params: Record<string, string | number>) =>
    ok<{ invites: AdminInvite[]; cursor?: string; hasMore: boolean; total: number }>('searchInvites', { params })
  const history = (uri: string) => ok<{ uri: string; invite?: AdminInvite; events: AuditEventView[] }>('getInviteHistory', { params: { uri } })
  const act = (name: 'takedownInvite' | 'restoreInvite' | 'blockInviter' | 'unblockInviter', body: Record<string, unknown>) =>
    ok<{ changed: boolean }>(name, { body })
  /** Waits until the service holds the invite, served or not. */
  const waitForInvite = (uri: string, check: (i: AdminInvite) => boolean = () => true) =>
    waitFor(async () => (await search({ uri })).invites.find(check), `${uri} in the moderator search`)
  return { ok, search, history, act, waitForInvite }
}
