import type { FastifyInstance } from 'fastify'
import { readRelayState } from '../db/cursor.ts'
import { queueStats } from '../db/verification.ts'
import { backfillProgress } from '../db/backfill.ts'
import type { ApiContext } from './context.ts'

export const registerHealth = (app: FastifyInstance, ctx: ApiContext): void => {
  app.get('/xrpc/_health', async () => {
    const [state, queue, backfill] = await Promise.all([
      readRelayState(ctx.pool, ctx.relayUrl),
      queueStats(ctx.pool),
      backfillProgress(ctx.pool),
    ])
    return {
      version: ctx.version,
      leader: ctx.isLeader(),
      relay: ctx.relayUrl,
      cursor: state.cursor,
      cursorUpdatedAt: state.updatedAt?.toISOString() ?? null,
      ingest: state.status,
      verificationQueue: queue,
      backfill,
    }
  })
}
