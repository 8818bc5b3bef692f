import type { FastifyInstance, FastifyRequest } from 'fastify'
import { inviteHistory, type AuditEvent, type Moderator } from '../db/audit.ts'
import { readRelayState } from '../db/stream-cursor.ts'
import { currentLag, ingestHistory } from '../db/firehose.ts'
import { inviteExists, inviterVolume, listBlocks, listRejections, setMeasure } from '../db/moderation.ts'
import { listInvites, type InviteRow } from '../db/queries.ts'
import { queueStats } from '../db/verification.ts'
import { backfillProgress } from '../db/backfill.ts'
import type { ApiContext } from './context.ts'
import { decodeCursor, encodeCursor } from './page-cursor.ts'
import { invalidRequest, notFound } from './errors.ts'
import { assertParams, defined, integer, single, stateParam } from './params.ts'

export const ADMIN_NS = 'pub.chive.collabIndexer.admin'
// The ingester commits its status at least every five seconds; much older means it is not running.
const STATUS_STALE_SECONDS = 30

type Query = Record<string, string | string[] | undefined>

const iso = (d: Date | null | undefined): string | undefined => d?.toISOString()

export const adminInviteView = (r: InviteRow) => {
  const m = r.moderation
  return defined({
    uri: r.uri,
    cid: m?.cid,
    inviter: r.inviter,
    invitee: r.invitee,
    subjectUri: r.subjectUri,
    subjectCid: m?.subjectCid,
    subjectCollection: r.subjectCollection,
    role: r.role ?? undefined,
    message: r.message ?? undefined,
    state: r.state,
    verification: m?.verification,
    verificationReason: m?.verificationReason ?? undefined,
    acceptanceUri: r.acceptanceUri ?? undefined,
    createdAt: r.createdAt.toISOString(),
    expiresAt: iso(r.expiresAt),
    acceptedAt: iso(r.acceptedAt),
    indexedAt: iso(m?.indexedAt),
    deletedAt: iso(m?.deletedAt),
    inviterStatus: m?.inviterInactive ?? undefined,
    takedown: m?.takedown ? { ...m.takedown, at: m.takedown.at.toISOString() } : undefined,
    inviterBlock: m?.block ? { ...m.block, at: m.block.at.toISOString() } : undefined,
    served: m?.served,
  })
}

export const auditEventView = (e: AuditEvent) =>
  defined({
    id: e.id,
    subject: e.subject,
    inviteUri: e.inviteUri,
    collection: e.collection,
    repo: e.repo,
    event: e.event,
    reason: e.reason,
    detail: e.detail,
    message: e.message,
    record: e.record,
    seq: e.seq,
    rev: e.rev,
    cid: e.cid,
    actor: e.actor,
    actorKind: e.actorKind,
    at: e.at.toISOString(),
  })

const dateParam = (value: string | undefined): Date | undefined => (value === undefined ? undefined : new Date(value))

/** Moderator search, shared by the XRPC method and the dashboard. */
export const searchInvites = async (ctx: ApiContext, query: Query) => {
  const params = defined({
    inviter: single(query, 'inviter'),
    invitee: single(query, 'invitee'),
    subjectUri: single(query, 'subjectUri'),
    subjectCollection: single(query, 'subjectCollection'),
    uri: single(query, 'uri'),
    state: single(query, 'state'),
    verification: single(query, 'verification'),
    since: single(query, 'since'),
    until: single(query, 'until'),
    limit: integer(query, 'limit'),
    cursor: single(query, 'cursor'),
  })
  assertParams(ctx.lexicons, `${ADMIN_NS}.searchInvites`, params)
  const state = stateParam(params.state)
  const page = await listInvites(ctx.pool, {
    inviter: params.inviter,
    invitee: params.invitee,
    subjectUri: params.subjectUri,
    subjectCollection: params.subjectCollection,
    uri: params.uri,
    state,
    limit: params.limit ?? 50,
    after: params.cursor === undefined ? undefined : decodeCursor(params.cursor),
    moderator: { verification: params.verification, since: dateParam(params.since), until: dateParam(params.until) },
  })
  return defined({
    invites: page.invites.map(adminInviteView),
    cursor: page.next && encodeCursor(page.next),
    hasMore: page.next !== undefined,
    total: page.total,
  })
}

/** One invite's (or acceptance's) history and, while the service holds it, its current view. */
export const getInviteHistory = async (ctx: ApiContext, uri: string) => {
  const [events, current] = await Promise.all([
    inviteHistory(ctx.pool, uri),
    listInvites(ctx.pool, { uri, state: 'all', limit: 1, moderator: {} }),
  ])
  const invite = current.invites[0]
  if (events === null && invite === undefined) throw notFound(`the service holds no history of ${uri}`)
  return defined({ uri, invite: invite && adminInviteView(invite), events: (events ?? []).map(auditEventView) })
}

const counts = (value: unknown): Record<string, number> =>
  typeof value === 'object' && value !== null
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'number' ? v : Number((v as { count?: unknown })?.count ?? 0)]))
    : {}
const sum = (record: Record<string, number>): number => Object.values(record).reduce((a, b) => a + b, 0)

/** The ingester's health as the last status commit left it, with the last hour per minute. */
const roundLag = (seconds: number | null): number | undefined => (seconds === null ? undefined : Math.round(seconds))

export const firehoseStatus = async (ctx: ApiContext) => {
  const [state, queue, lag, history, backfill] = await Promise.all([
    readRelayState(ctx.pool, ctx.relayUrl),
    queueStats(ctx.pool),
    currentLag(ctx.pool, ctx.relayUrl),
    ingestHistory(ctx.pool, ctx.relayUrl, 60),
    backfillProgress(ctx.pool),
  ])
  const active = backfill.runs.filter((r) => r.status !== 'done')
  const s = (typeof state.status === 'object' && state.status !== null ? state.status : {}) as Record<string, unknown>
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined)
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
  const ageSeconds = state.statusAt ? Math.max(0, Math.round((Date.now() - state.statusAt.getTime()) / 1000)) : undefined
  const malformed = counts(s.malformed)
  const rejected = counts(s.rejected)
  const problems = counts(s.problems)
  return defined({
    relay: ctx.relayUrl,
    mode: ctx.source.mode,
    sourceUrl: str(s.sourceUrl),
    jetstreamVersion: str(s.jetstreamVersion),
    bytesPerSecond: num(s.bytesPerSecond),
    proofs: typeof s.proofs === 'object' && s.proofs !== null ? s.proofs : undefined,
    cursor: state.cursor ?? undefined,
    cursorUpdatedAt: iso(state.updatedAt),
    statusAgeSeconds: ageSeconds,
    connected: s.connected === true && ageSeconds !== undefined && ageSeconds <= STATUS_STALE_SECONDS,
    // The history's latest point when it has one (the same row, read in the same query), so
    // that the figure and the chart's last point never disagree.
    lagSeconds: roundLag(history.length > 0 ? (history[history.length - 1]?.lagSeconds ?? null) : lag),
    reconnects: num(s.reconnects),
    lastDisconnectReason: str(s.lastDisconnectReason),
    lastEventTime: str(s.lastEventTime),
    framesReceived: num(s.framesReceived),
    eventsIndexed: num(s.eventsIndexed),
    errors: { malformed: sum(malformed), rejected: sum(rejected), problems: sum(problems) },
    malformed,
    rejected,
    problems: s.problems ?? {},
    verification: s.verification ?? undefined,
    verificationQueue: defined({
      depth: queue.depth,
      oldestAgeSeconds: queue.oldestAgeSeconds === null ? undefined : Math.round(queue.oldestAgeSeconds),
    }),
    backfill: {
      pendingRepos: backfill.resync.pending + active.reduce((n, r) => n + r.repos.pending, 0),
      failedRepos: backfill.resync.failed + active.reduce((n, r) => n + r.repos.failed, 0),
      desynchronized: backfill.resync.desynchronized,
      activeRuns: active.length,
    },
    history: history.map((p) =>
      defined({
        minute: p.minute.toISOString(),
        events: p.events,
        lagSeconds: roundLag(p.lagSeconds),
      }),
    ),
  })
}

export type ModerationAction = 'takedownInvite' | 'restoreInvite' | 'blockInviter' | 'unblockInviter'

/**
 * Applies a moderator action; shared by the XRPC procedures and the dashboard's forms, so both
 * are held to the procedure's lexicon (an AT-URI or a DID, a reason).
 */
export const moderate = async (ctx: ApiContext, action: ModerationAction, input: Record<string, unknown>, by: Moderator) => {
  try {
    ctx.lexicons.assertValidXrpcInput(`${ADMIN_NS}.${action}`, input)
  } catch (err) {
    throw invalidRequest((err as Error).message)
  }
  const target = String(action.endsWith('Invite') ? input.uri : input.did)
  const why = String(input.reason).trim()
  if (why === '') throw invalidRequest('a reason is required')
  switch (action) {
    case 'takedownInvite':
      if (!(await inviteExists(ctx.pool, target))) throw notFound(`the service holds no invite ${target}`)
      return { uri: target, takenDown: true, changed: await setMeasure(ctx.pool, 'takedown', target, true, why, by) }
    case 'restoreInvite':
      return { uri: target, takenDown: false, changed: await setMeasure(ctx.pool, 'takedown', target, false, why, by) }
    case 'blockInviter':
      return { did: target, blocked: true, changed: await setMeasure(ctx.pool, 'block', target, true, why, by) }
    case 'unblockInviter':
      return { did: target, blocked: false, changed: await setMeasure(ctx.pool, 'block', target, false, why, by) }
  }
}

export const registerAdmin = (app: FastifyInstance, ctx: ApiContext): void => {
  const query = (name: string, handler: (q: Query, req: FastifyRequest) => Promise<unknown>) => {
    const nsid = `${ADMIN_NS}.${name}`
    app.get(`/xrpc/${nsid}`, async (req) => {
      await ctx.moderators.verify(req, nsid)
      return handler(req.query as Query, req)
    })
  }
  query('searchInvites', (q) => searchInvites(ctx, q))
  query('getInviteHistory', async (q) => {
    const params = defined({ uri: single(q, 'uri') })
    assertParams(ctx.lexicons, `${ADMIN_NS}.getInviteHistory`, params)
    return getInviteHistory(ctx, params.uri as string)
  })
  query('listRejections', async (q) => {
    const params = defined({
      repo: single(q, 'repo'),
      uri: single(q, 'uri'),
      reason: single(q, 'reason'),
      limit: integer(q, 'limit'),
      cursor: single(q, 'cursor'),
    })
    assertParams(ctx.lexicons, `${ADMIN_NS}.listRejections`, params)
    if (params.cursor !== undefined && !/^\d{1,15}$/.test(params.cursor)) throw invalidRequest('malformed cursor')
    const page = await listRejections(ctx.pool, { ...params, limit: params.limit ?? 50, before: params.cursor === undefined ? undefined : Number(params.cursor) })
    return defined({
      rejections: page.rows.map((r) => defined({ ...r, rejectedAt: r.rejectedAt.toISOString() })),
      cursor: page.next?.toString(),
    })
  })
  query('getInviterVolume', async (q) => {
    const params = defined({ inviter: single(q, 'inviter'), limit: integer(q, 'limit') })
    assertParams(ctx.lexicons, `${ADMIN_NS}.getInviterVolume`, params)
    const { spamPerHour: perHour, spamPerDay: perDay } = ctx.admin
    const inviters = await inviterVolume(ctx.pool, { inviter: params.inviter, limit: params.limit ?? 50, perHour, perDay })
    return { thresholds: { perHour, perDay }, inviters }
  })
  query('listBlockedInviters', async (q) => {
    const params = defined({ limit: integer(q, 'limit') })
    assertParams(ctx.lexicons, `${ADMIN_NS}.listBlockedInviters`, params)
    const blocks = await listBlocks(ctx.pool, params.limit ?? 50)
    return { blocks: blocks.map((b) => ({ ...b, at: b.at.toISOString() })) }
  })
  query('getFirehoseStatus', () => firehoseStatus(ctx))

  for (const action of ['takedownInvite', 'restoreInvite', 'blockInviter', 'unblockInviter'] as const) {
    const nsid = `${ADMIN_NS}.${action}`
    app.post(`/xrpc/${nsid}`, async (req) => {
      const by = await ctx.moderators.verify(req, nsid)
      return moderate(ctx, action, (req.body ?? {}) as Record<string, unknown>, by)
    })
  }
}
