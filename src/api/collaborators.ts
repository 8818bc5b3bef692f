import type { FastifyInstance } from 'fastify'
import { listCollaborators } from '../db/queries.ts'
import type { ApiContext } from './context.ts'
import { assertParams, defined, single } from './params.ts'

const NSID = 'pub.chive.collaboration.listCollaborators'

export const registerListCollaborators = (app: FastifyInstance, ctx: ApiContext): void => {
  app.get(`/xrpc/${NSID}`, async (req) => {
    const query = req.query as Record<string, string | string[] | undefined>
    const params = defined({ subjectUri: single(query, 'subjectUri') })
    assertParams(ctx.lexicons, NSID, params)
    // Auth is optional here, but a token that is sent must be valid.
    if (req.headers.authorization !== undefined) await ctx.auth.verify(req.headers.authorization, NSID)
    const rows = await listCollaborators(ctx.pool, params.subjectUri as string)
    return {
      collaborators: rows.map((r) =>
        defined({
          did: r.did,
          inviteUri: r.inviteUri,
          acceptanceUri: r.acceptanceUri,
          role: r.role ?? 'collaborator',
          acceptedAt: r.acceptedAt.toISOString(),
        }),
      ),
    }
  })
}
