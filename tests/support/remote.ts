import { expect } from 'vitest'
import { ADMIN_NS, ADMIN_PASSWORD, basic, type AdminInvite, type AuditEventView } from './admin.ts'
import { LIST_COLLABORATORS, LIST_INVITES, assertValidOutput, lexicons, type User } from './harness.ts'
import type { CollaboratorView, ListInvites } from './views.ts'

export interface RemoteHealth {
  cursor: number | null
  leader?: boolean
  ingest: { rejected?: Record<string, number>; resyncsRequested?: number; lastSeq?: number | null } | null
  backfill?: { resync: { pending: number; failed: number; desynchronized: number } }
}

/**
 * The public and admin API of a service reached by its address only (e.g. one started with
 * `spawnService`): lexicon-checked calls, the admin ones signed in with `ADMIN_PASSWORD`.
 */
export const remoteApi = (base: string, adminPassword = ADMIN_PASSWORD) => {
  const get = async <T>(nsid: string, params: Record<string, string | number>, authorization?: string) => {
    const url = new URL(`/xrpc/${nsid}`, base)
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v))
    const res = await fetch(url, { headers: authorization ? { authorization } : {} })
    return { status: res.status, body: (await res.json()) as T }
  }
  const ok = async <T>(nsid: string, params: Record<string, string | number>, authorization?: string): Promise<T> => {
    const res = await get<T>(nsid, params, authorization)
    expect(res.status, `${nsid}: ${JSON.stringify(res.body)}`).toBe(200)
    if (nsid.startsWith(ADMIN_NS)) lexicons.assertValidXrpcOutput(nsid, res.body)
    else assertValidOutput(nsid, res.body)
    return res.body
  }
  /** Every page of listInvites for these parameters, with a token of the caller's PDS. */
  const listAll = async (user: User, params: Record<string, string | number>, token?: string) => {
    const bearer = `Bearer ${token ?? (await user.token(LIST_INVITES))}`
    const invites: ListInvites['invites'] = []
    let total: number | undefined
    let cursor: string | undefined
    do {
      const page = await ok<ListInvites>(LIST_INVITES, { ...params, limit: 100, ...(cursor ? { cursor } : {}) }, bearer)
      invites.push(...page.invites)
      total ??= page.total
      cursor = page.cursor
    } while (cursor)
    return { invites, total }
  }
  const admin = basic(adminPassword)
  return {
    get,
    health: async () => (await get<RemoteHealth>('_health', {})).body,
    inbox: (user: User, token?: string) => listAll(user, { invitee: user.did }, token),
    outbox: (user: User, token?: string) => listAll(user, { inviter: user.did }, token),
    collaborators: async (subjectUri: string) =>
      (await ok<{ collaborators: CollaboratorView[] }>(LIST_COLLABORATORS, { subjectUri })).collaborators,
    search: (params: Record<string, string | number>) =>
      ok<{ invites: AdminInvite[]; cursor?: string; hasMore: boolean; total: number }>(`${ADMIN_NS}.searchInvites`, params, admin),
    history: (uri: string) => ok<{ uri: string; invite?: AdminInvite; events: AuditEventView[] }>(`${ADMIN_NS}.getInviteHistory`, { uri }, admin),
    rejections: (params: Record<string, string | number>) =>
      ok<{ rejections: { uri: string; reason: string; repo: string }[] }>(`${ADMIN_NS}.listRejections`, params, admin),
  }
}
