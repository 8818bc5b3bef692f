import { createHash } from 'node:crypto'
import type { Pool } from './pool.ts'

/**
 * A named statement: each pooled connection plans it once and reuses the plan. These queries
 * take longer to plan than to run (ms vs. sub-ms on an inbox), so this doubles their throughput.
 */
export const prepared = (text: string, values: unknown[]) => ({
  name: `q${createHash('sha1').update(text).digest('hex').slice(0, 16)}`,
  text,
  values,
})

export type InviteState = 'pending' | 'accepted' | 'rejected' | 'expired'

export interface InviteRow {
  uri: string
  inviter: string
  invitee: string
  subjectUri: string
  subjectCollection: string
  role: string | null
  message: string | null
  state: InviteState
  createdAt: Date
  expiresAt: Date | null
  acceptanceUri: string | null
  acceptedAt: Date | null
  /** Present in moderator searches only. */
  moderation?: ModerationInfo
}

/** What moderators see beside the public view of an invite. */
export interface ModerationInfo {
  cid: string
  subjectCid: string
  verification: string
  verificationReason: string | null
  indexedAt: Date
  deletedAt: Date | null
  inviterInactive: string | null
  /** Whether public queries serve it (the same predicate they use). */
  served: boolean
  takedown: { reason: string; actor: string; at: Date } | null
  block: { reason: string; actor: string; at: Date } | null
}

/** Moderators search every invite, served or not, and filter on what only they see. */
export interface ModeratorFilter {
  verification?: string | undefined
  since?: Date | undefined
  until?: Date | undefined
}

/** Keyset position: the page order is (sort_at DESC, uri DESC); sort_at kept in microseconds. */
export interface PageKey {
  sortMicros: bigint
  uri: string
}

export interface InviteFilter {
  invitee?: string | undefined
  inviter?: string | undefined
  subjectUri?: string | undefined
  subjectCollection?: string | undefined
  uri?: string | undefined
  state: InviteState | 'all'
  limit: number
  after?: PageKey | undefined
  moderator?: ModeratorFilter | undefined
}

export interface InvitePage {
  invites: InviteRow[]
  next: PageKey | undefined
  total: number
}

export interface CollaboratorRow {
  did: string
  inviteUri: string
  acceptanceUri: string
  role: string | null
  acceptedAt: Date
}

// The first live acceptance that really answers invite `i`: written by its invitee, about
// its subject, naming a version of it we saw (or no CID at all: Chive's lenient form).
export const ACCEPTANCE_OF_INVITE = `
  SELECT a.uri, a.created_at FROM acceptance a
  WHERE a.invite_uri = i.uri AND a.author = i.invitee AND a.subject_uri = i.subject_uri
    AND (a.invite_cid IS NULL
         OR EXISTS (SELECT 1 FROM invite_version v WHERE v.uri = i.uri AND v.cid = a.invite_cid))
    AND NOT EXISTS (SELECT 1 FROM account x WHERE x.did = a.author AND NOT x.active)
  ORDER BY a.created_at, a.uri
  LIMIT 1`

// Served invites: their subject is proven, their inviter is active, and no moderator hid them.
export const SERVABLE = `i.verification = 'verified'
  AND NOT EXISTS (SELECT 1 FROM account x WHERE x.did = i.inviter AND NOT x.active)
  AND NOT EXISTS (SELECT 1 FROM takedown t WHERE t.uri = i.uri)
  AND NOT EXISTS (SELECT 1 FROM blocked_inviter b WHERE b.did = i.inviter)`

export const STATE = `CASE
    WHEN i.deleted_at IS NOT NULL THEN 'rejected'
    WHEN i.expires_at IS NOT NULL AND i.expires_at <= now() THEN 'expired'
    WHEN acc.uri IS NOT NULL THEN 'accepted'
    ELSE 'pending' END`

export interface RawInvite {
  uri: string
  inviter: string
  invitee: string
  subject_uri: string
  subject_collection: string
  role: string | null
  message: string | null
  state: InviteState
  created_at: Date
  expires_at: Date | null
  acceptance_uri: string | null
  accepted_at: Date | null
  sort_us: string
  m_cid?: string
  m_subject_cid?: string
  m_verification?: string
  m_verification_reason?: string | null
  m_indexed_at?: Date
  m_deleted_at?: Date | null
  m_inactive?: string | null
  m_takedown_reason?: string | null
  m_takedown_actor?: string | null
  m_takedown_at?: Date | null
  m_block_reason?: string | null
  m_block_actor?: string | null
  m_block_at?: Date | null
  m_served?: boolean
}

const MODERATION_COLUMNS = `,
  i.cid AS m_cid, i.subject_cid AS m_subject_cid, i.verification AS m_verification,
  i.verification_reason AS m_verification_reason, i.indexed_at AS m_indexed_at, i.deleted_at AS m_deleted_at,
  (SELECT coalesce(x.status, 'inactive') FROM account x WHERE x.did = i.inviter AND NOT x.active) AS m_inactive,
  t.reason AS m_takedown_reason, t.actor AS m_takedown_actor, t.at AS m_takedown_at,
  b.reason AS m_block_reason, b.actor AS m_block_actor, b.at AS m_block_at,
  (${SERVABLE}) AS m_served`
const MODERATION_COLUMN_NAMES = [...MODERATION_COLUMNS.matchAll(/ AS (m_\w+)/g)].map((x) => x[1])
const MODERATION_JOINS = `
    LEFT JOIN takedown t ON t.uri = i.uri
    LEFT JOIN blocked_inviter b ON b.did = i.inviter`

const moderationInfo = (r: RawInvite): ModerationInfo | undefined =>
  r.m_cid === undefined
    ? undefined
    : {
        cid: r.m_cid,
        subjectCid: r.m_subject_cid ?? '',
        verification: r.m_verification ?? 'pending',
        verificationReason: r.m_verification_reason ?? null,
        indexedAt: r.m_indexed_at ?? new Date(0),
        deletedAt: r.m_deleted_at ?? null,
        inviterInactive: r.m_inactive ?? null,
        takedown: r.m_takedown_at ? { reason: r.m_takedown_reason ?? '', actor: r.m_takedown_actor ?? '', at: r.m_takedown_at } : null,
        block: r.m_block_at ? { reason: r.m_block_reason ?? '', actor: r.m_block_actor ?? '', at: r.m_block_at } : null,
        served: r.m_served === true,
      }

export const listInvites = async (pool: Pool, f: InviteFilter): Promise<InvitePage> => {
  const params: unknown[] = []
  const m = f.moderator
  const where: string[] = m ? ['true'] : [SERVABLE]
  const add = (sql: (p: string) => string, value: unknown) => {
    params.push(value)
    where.push(sql(`$${params.length}`))
  }
  if (f.invitee !== undefined) add((p) => `i.invitee = ${p}`, f.invitee)
  if (f.inviter !== undefined) add((p) => `i.inviter = ${p}`, f.inviter)
  if (f.subjectUri !== undefined) add((p) => `i.subject_uri = ${p}`, f.subjectUri)
  if (f.subjectCollection !== undefined) add((p) => `i.subject_collection = ${p}`, f.subjectCollection)
  if (f.uri !== undefined) add((p) => `i.uri = ${p}`, f.uri)
  if (m?.verification !== undefined) add((p) => `i.verification = ${p}`, m.verification)
  if (m?.since !== undefined) add((p) => `i.sort_at >= ${p}`, m.since)
  if (m?.until !== undefined) add((p) => `i.sort_at < ${p}`, m.until)
  const filtered = `
    SELECT i.*, acc.uri AS acceptance_uri, acc.created_at AS accepted_at, ${STATE} AS state
           ${m ? MODERATION_COLUMNS : ''}
    FROM invite i
    LEFT JOIN LATERAL (${ACCEPTANCE_OF_INVITE}) acc ON i.deleted_at IS NULL
    ${m ? MODERATION_JOINS : ''}
    WHERE ${where.join(' AND ')}`
  const outer: string[] = []
  const countParams = [...params]
  if (f.state !== 'all') {
    params.push(f.state)
    countParams.push(f.state)
    outer.push(`s.state = $${params.length}`)
  }
  const countSql = `SELECT count(*)::int AS n FROM (${filtered}) s ${outer.length ? `WHERE ${outer.join(' AND ')}` : ''}`
  if (f.after) {
    params.push(f.after.sortMicros.toString(), f.after.uri)
    outer.push(
      `(s.sort_at, s.uri) < (timestamptz 'epoch' + $${params.length - 1}::bigint * interval '1 microsecond', $${params.length})`,
    )
  }
  params.push(f.limit + 1)
  const pageSql = `
    SELECT s.uri, s.inviter, s.invitee, s.subject_uri, s.subject_collection, s.role, s.message, s.state,
           s.created_at, s.expires_at, s.acceptance_uri, s.accepted_at,
           (extract(epoch FROM s.sort_at) * 1000000)::bigint::text AS sort_us
           ${f.after ? '' : ', count(*) OVER ()::int AS total_count'}
           ${m ? ', s.' + MODERATION_COLUMN_NAMES.join(', s.') : ''}
    FROM (${filtered}) s
    ${outer.length ? `WHERE ${outer.join(' AND ')}` : ''}
    ORDER BY s.sort_at DESC, s.uri DESC
    LIMIT $${params.length}`
  // A first page counts its whole filtered set in the same pass (the window runs before LIMIT);
  // later pages, whose keyset cuts the set, count it separately.
  const [page, count] = await Promise.all([
    pool.query<RawInvite & { total_count?: number }>(prepared(pageSql, params)),
    f.after ? pool.query<{ n: number }>(prepared(countSql, countParams)) : null,
  ])
  const rows = page.rows.slice(0, f.limit)
  const last = rows[rows.length - 1]
  return {
    invites: rows.map((r) => ({
      uri: r.uri,
      inviter: r.inviter,
      invitee: r.invitee,
      subjectUri: r.subject_uri,
      subjectCollection: r.subject_collection,
      role: r.role,
      message: r.message,
      state: r.state,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      acceptanceUri: r.acceptance_uri,
      acceptedAt: r.accepted_at,
      ...(m ? { moderation: moderationInfo(r) } : {}),
    })),
    next: page.rows.length > f.limit && last ? { sortMicros: BigInt(last.sort_us), uri: last.uri } : undefined,
    total: count ? (count.rows[0]?.n ?? 0) : (page.rows[0]?.total_count ?? 0),
  }
}

/**
 * Active collaborators on a subject: live, unexpired invites with a valid live acceptance; oldest
 * acceptance first, one page at a time (keyset on acceptance time, then acceptance URI), so a
 * subject with many collaborators is served whole, in bounded queries.
 */
export const listCollaborators = async (
  pool: Pool,
  subjectUri: string,
  page: { limit: number; after?: PageKey | undefined },
): Promise<{ rows: CollaboratorRow[]; next: PageKey | undefined }> => {
  const after = page.after
  const res = await pool.query<{ did: string; invite_uri: string; acceptance_uri: string; role: string | null; accepted_at: Date; sort_us: string }>(
    prepared(
    `SELECT c.*, (extract(epoch FROM c.accepted_at) * 1000000)::bigint::text AS sort_us FROM (
       SELECT DISTINCT ON (i.invitee) i.invitee AS did, i.uri AS invite_uri, acc.uri AS acceptance_uri,
              i.role, acc.created_at AS accepted_at
       FROM invite i
       JOIN LATERAL (${ACCEPTANCE_OF_INVITE}) acc ON true
       WHERE i.subject_uri = $1 AND i.deleted_at IS NULL
         AND (i.expires_at IS NULL OR i.expires_at > now())
         AND ${SERVABLE}
       ORDER BY i.invitee, acc.created_at, i.uri
     ) c
     WHERE $3::bigint IS NULL
        OR (c.accepted_at, c.acceptance_uri) > (timestamptz 'epoch' + $3::bigint * interval '1 microsecond', $4::text)
     ORDER BY c.accepted_at, c.acceptance_uri
     LIMIT $2`,
    [subjectUri, page.limit + 1, after ? after.sortMicros.toString() : null, after ? after.uri : null],
    ),
  )
  const rows = res.rows.slice(0, page.limit)
  const last = rows[rows.length - 1]
  return {
    rows: rows.map((r) => ({
      did: r.did,
      inviteUri: r.invite_uri,
      acceptanceUri: r.acceptance_uri,
      role: r.role,
      acceptedAt: r.accepted_at,
    })),
    next: res.rows.length > page.limit && last ? { sortMicros: BigInt(last.sort_us), uri: last.acceptance_uri } : undefined,
  }
}
