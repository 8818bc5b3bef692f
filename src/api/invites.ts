import type { FastifyInstance } from 'fastify'
import { AtUri } from '@atproto/syntax'
import { listInvites, type InviteRow } from '../db/queries.ts'
import type { ApiContext } from './context.ts'
import { decodeCursor, encodeCursor } from './page-cursor.ts'
import { forbidden } from './errors.ts'
import { assertParams, defined, integer, single, stateParam } from './params.ts'

const NSID = 'pub.chive.collaboration.listInvites'

export const inviteView = (r: InviteRow) =>
  defined({
    uri: r.uri,
    inviter: r.inviter,
    invitee: r.invitee,
    subjectUri: r.subjectUri,
    subjectCollection: r.subjectCollection,
    role: r.role ?? 'collaborator',
    message: r.message ?? undefined,
    state: r.state,
    acceptanceUri: r.acceptanceUri ?? undefined,
    createdAt: r.createdAt.toISOString(),
    expiresAt: r.expiresAt?.toISOString(),
    acceptedAt: r.acceptedAt?.toISOString(),
  })

export const registerListInvites = (app: FastifyInstance, ctx: ApiContext): void => {
  app.get(`/xrpc/${NSID}`, async (req) => {
    const query = req.query as Record<string, string | string[] | undefined>
    const params = defined({
      invitee: single(query, 'invitee'),
      inviter: single(query, 'inviter'),
      subjectUri: single(query, 'subjectUri'),
      subjectCollection: single(query, 'subjectCollection'),
      state: single(query, 'state'),
      limit: integer(query, 'limit'),
      cursor: single(query, 'cursor'),
    })
    assertParams(ctx.lexicons, NSID, params)
    const state = stateParam(params.state)
    const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor)

    const caller = await ctx.auth.verify(req.headers.authorization, NSID)
    const subjectAuthor = params.subjectUri === undefined ? undefined : new AtUri(params.subjectUri).host
    if (params.invitee !== caller && params.inviter !== caller && subjectAuthor !== caller) {
      throw forbidden('the query must be scoped to the caller: invitee, inviter or subjectUri authored by the caller')
    }

    const limit = params.limit ?? 50
    const page = await listInvites(ctx.pool, {
      invitee: params.invitee,
      inviter: params.inviter,
      subjectUri: params.subjectUri,
      subjectCollection: params.subjectCollection,
      state,
      limit,
      after,
    })
    return defined({
      invites: page.invites.map(inviteView),
      cursor: page.next && encodeCursor(page.next),
      hasMore: page.next !== undefined,
      total: page.total,
    })
  })
}
