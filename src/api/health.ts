import type { FastifyInstance } from 'fastify'
import { readRelayState } from '../db/stream-cursor.ts'
import { queueStats } from '../db/verification.ts'
import { backfillProgress } from '../db/backfill.ts'
import { endpointStatus } from '../db/webhook.ts'
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
    Promise.all([
      readRelayState(ctx.pool, ctx.relayUrl),
      queueStats(ctx.pool),
      backfillProgress(ctx.pool),
      endpointStatus(ctx.pool, ctx.push?.webhookUrls ?? []),
    ]),
  )
  app.get('/xrpc/_health', async () => {
    const [state, queue, backfill, webhooks] = await read()
    const fanout = ctx.push?.fanout()
    const subs = ctx.push?.subscriptions()
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
      // This replica's subscriptions; the feed position it has handed on.
      push: fanout && {
        listening: fanout.listening,
        feedPosition: fanout.position,
        subscribers: subs?.connections ?? 0,
        slowConsumersCut: subs?.slowConsumersCut ?? 0,
        // Refused at connect (auth, parameters, limits) and ended at their token's exp.
        refused: subs?.refused ?? 0,
        expired: subs?.expired ?? 0,
        lastError: fanout.lastError,
      },
      // Every configured endpoint, whichever replica delivers to it.
      webhooks: webhooks.map((w) => ({
        ...w,
        lastFailureAt: w.lastFailureAt?.toISOString() ?? null,
        failingSince: w.failingSince?.toISOString() ?? null,
        nextAttemptAt: w.nextAttemptAt.toISOString(),
        lastDeliveredAt: w.lastDeliveredAt?.toISOString() ?? null,
      })),
    }
  })
}
