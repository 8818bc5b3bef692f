import type { Pool } from './pool.ts'
import { inTransaction } from './transaction.ts'
import { INVITE_NSID } from './effects.ts'
import { auditModeration, type Moderator } from './audit.ts'

/** Whether the service holds the invite (live or a tombstone). */
export const inviteExists = async (pool: Pool, uri: string): Promise<boolean> =>
  ((await pool.query('SELECT 1 FROM invite WHERE uri = $1', [uri])).rowCount ?? 0) > 0

// A takedown hides one invite (by URI); a block hides every invite of an inviter (by DID).
const MEASURES = {
  takedown: { table: 'takedown', key: 'uri', on: 'takedown', off: 'restore' },
  block: { table: 'blocked_inviter', key: 'did', on: 'block', off: 'unblock' },
} as const

/**
 * Puts a takedown or block on `target` (`on` true) or lifts it. Returns whether anything
 * changed; only a change is written to the audit trail, so repeating an action is harmless.
 */
export const setMeasure = (
  pool: Pool,
  measure: keyof typeof MEASURES,
  target: string,
  on: boolean,
  reason: string,
  by: Moderator,
): Promise<boolean> =>
  inTransaction(pool, async (client) => {
    const { table, key, on: onEvent, off: offEvent } = MEASURES[measure]
    const res = on
      ? await client.query(`INSERT INTO ${table} (${key}, reason, actor) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [target, reason, by.actor])
      : await client.query(`DELETE FROM ${table} WHERE ${key} = $1`, [target])
    const changed = (res.rowCount ?? 0) > 0
    if (changed) await auditModeration(client, target, on ? onEvent : offEvent, reason, by)
    return changed
  })

export interface BlockRow {
  did: string
  reason: string
  actor: string
  at: Date
}

export const listBlocks = async (pool: Pool, limit: number): Promise<BlockRow[]> =>
  (await pool.query<BlockRow>('SELECT did, reason, actor, at FROM blocked_inviter ORDER BY at DESC, did LIMIT $1', [limit])).rows

export interface RejectionRow {
  id: number
  uri: string | null
  collection: string | null
  repo: string | null
  rev: string | null
  cid: string | null
  seq: number | null
  reason: string
  detail: string | null
  record: unknown
  rejectedAt: Date
}

export interface RejectionFilter {
  repo?: string | undefined
  uri?: string | undefined
  reason?: string | undefined
  limit: number
  /** Keyset: rows with a smaller id (older) than this. */
  before?: number | undefined
}

/** The rejection log, newest first. */
export const listRejections = async (pool: Pool, f: RejectionFilter): Promise<{ rows: RejectionRow[]; next: number | undefined }> => {
  const params: unknown[] = []
  const where: string[] = []
  const add = (column: string, value: unknown, op = '=') => {
    if (value === undefined) return
    params.push(value)
    where.push(`${column} ${op} $${params.length}`)
  }
  add('repo', f.repo)
  add('uri', f.uri)
  add('reason', f.reason)
  add('id', f.before, '<')
  params.push(f.limit + 1)
  const res = await pool.query<Omit<RejectionRow, 'rejectedAt'> & { rejected_at: Date }>(
    `SELECT id, uri, collection, repo, rev, cid, seq, reason, detail, record, rejected_at FROM rejection
     ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY id DESC LIMIT $${params.length}`,
    params,
  )
  const rows = res.rows.slice(0, f.limit).map(({ rejected_at, ...r }) => ({ ...r, rejectedAt: rejected_at }))
  return { rows, next: res.rows.length > f.limit ? rows[rows.length - 1]?.id : undefined }
}

export interface VolumeRow {
  inviter: string
  lastHour: number
  lastDay: number
  /** The most invites created in one clock hour of the last day. */
  peakHour: number
  likelySpam: boolean
  blocked: boolean
}

/**
 * Invites created per inviter over the last hour and day, counted from the audit trail so
 * that invites deleted or rejected since still count; the busiest first.
 */
export const inviterVolume = async (
  pool: Pool,
  opts: { inviter?: string | undefined; limit: number; perHour: number; perDay: number },
): Promise<VolumeRow[]> => {
  const res = await pool.query<{ inviter: string; last_hour: number; last_day: number; peak_hour: number; blocked: boolean }>(
    `WITH hourly AS (
       SELECT repo, date_trunc('hour', at) AS hour, count(*) AS n,
              count(*) FILTER (WHERE at > now() - interval '1 hour') AS recent
       FROM audit_event
       WHERE event = 'create' AND collection = $1 AND at > now() - interval '1 day' AND ($2::text IS NULL OR repo = $2)
       GROUP BY repo, hour
     )
     SELECT repo AS inviter, sum(recent)::int AS last_hour, sum(n)::int AS last_day, max(n)::int AS peak_hour,
            EXISTS (SELECT 1 FROM blocked_inviter b WHERE b.did = repo) AS blocked
     FROM hourly GROUP BY repo
     ORDER BY last_day DESC, last_hour DESC, repo
     LIMIT $3`,
    [INVITE_NSID, opts.inviter ?? null, opts.limit],
  )
  return res.rows.map((r) => ({
    inviter: r.inviter,
    lastHour: r.last_hour,
    lastDay: r.last_day,
    peakHour: r.peak_hour,
    likelySpam: r.peak_hour >= opts.perHour || r.last_day >= opts.perDay,
    blocked: r.blocked,
  }))
}
