import type { FastifyInstance } from 'fastify'
import { listCollaborators } from '../db/queries.ts'
import type { ApiContext } from './context.ts'
import { decodeCursor, encodeCursor } from './page-cursor.ts'
import { assertParams, defined, integer, single } from './params.ts'

const NSID = 'pub.chive.collaboration.listCollaborators'

export const registerListCollaborators = (app: FastifyInstance, ctx: ApiContext): void => {
  app.get(`/xrpc/${NSID}`, async (req) => {
    const query = req.query as Record<string, string | string[] | undefined>
    const params = defined({ subjectUri: single(query, 'subjectUri'), limit: integer(query, 'limit'), cursor: single(query, 'cursor') })
    assertParams(ctx.lexicons, NSID, params)
    const after = params.cursor === undefined ? undefined : decodeCursor(params.cursor)
    // Auth is optional here, but a token that is sent must be valid.
    if (req.headers.authorization !== undefined) await ctx.auth.verify(req.headers.authorization, NSID)
    // The default is the whole list up to the largest page: a client that never pages (Chive's
    // frontend) gets what it got before; past that, the cursor carries it on.
    const page = await listCollaborators(ctx.pool, params.subjectUri as string, { limit: params.limit ?? 1000, after })
    return defined({
      collaborators: page.rows.map((r) =>
        defined({
          did: r.did,
          inviteUri: r.inviteUri,
          acceptanceUri: r.acceptanceUri,
          role: r.role ?? 'collaborator',
          acceptedAt: r.acceptedAt.toISOString(),
        }),
      ),
      cursor: page.next && encodeCursor(page.next),
    })
  })
}
