import type { FastifyInstance } from 'fastify'
import { readRelayState } from '../db/cursor.ts'
import { queueStats } from '../db/verification.ts'
import { backfillProgress } from '../db/backfill.ts'
import type { ApiContext } from './context.ts'
import { cachedFor } from './cache.ts'

/**
 * What the ingester is doing, in one word, from its last status: `connected`, `connecting`
 * (first attempt or reconnecting now), `waiting` (a retry is scheduled), or `unknown` (no
 * status written yet: no replica is ingesting, or it has only just started).
 */
const ingestState = (status: unknown): string => {
  if (typeof status !== 'object' || status === null) return 'unknown'
  const s = status as { connected?: unknown; nextRetryInMs?: unknown }
  if (s.connected === true) return 'connected'
  return typeof s.nextRetryInMs === 'number' ? 'waiting' : 'connecting'
}

export const registerHealth = (app: FastifyInstance, ctx: ApiContext): void => {
  // Unauthenticated and never rate-limited: its database reads are shared for a second.
  const read = cachedFor(1000, () =>
    Promise.all([readRelayState(ctx.pool, ctx.relayUrl), queueStats(ctx.pool), backfillProgress(ctx.pool)]),
  )
  app.get('/xrpc/_health', async () => {
    const [state, queue, backfill] = await read()
    return {
      version: ctx.version,
      leader: ctx.isLeader(),
      relay: ctx.relayUrl,
      source: ctx.source,
      cursor: state.cursor,
      cursorUpdatedAt: state.updatedAt?.toISOString() ?? null,
      ingestState: ingestState(state.status),
      // The status is written at least every few seconds: its age says how fresh `ingest` is.
      ingestUpdatedAt: state.statusAt?.toISOString() ?? null,
      ingest: state.status,
      verificationQueue: queue,
      backfill,
    }
  })
}
