import pg from 'pg'
import type { Pool } from './pool.ts'
import { ACCEPTANCE_OF_INVITE, prepared, SERVABLE, STATE, type InviteRow, type RawInvite } from './queries.ts'

export type ChangeKind =
  | 'created'
  | 'updated'
  | 'accepted'
  | 'acceptanceWithdrawn'
  | 'expired'
  | 'deleted'
  | 'subjectDeleted'
  | 'takenDown'
  | 'restored'
  | 'removed'

/**
 * Kinds the feed recorded, before migration 1700000000060, for invites that left the served set
 * (its rows carry no `removed_view`): their parties hear of them if the invite had been pushed.
 */
const LEGACY_REMOVALS: ReadonlySet<string> = new Set(['deleted', 'subjectDeleted', 'takenDown'])

/** One entry of the change feed (`invite_change`), with the invite as the queries would show it now. */
export interface InviteChange {
  id: number
  kind: ChangeKind
  at: Date
  /**
   * null when nobody should hear of it: the invite is unknown (an acceptance of an invite not
   * held), not served (unproven, hidden) and the change is not the one that hid a served invite,
   * or outside the party filter.
   */
  invite: InviteRow | null
  /** Party DIDs routed to: inviter, invitee, and the subject's repo. */
  parties: string[]
}

/** A removal's view as the feed stored it (migration 1700000000060: invite_served_view): times as text. */
type StoredView = Omit<InviteRow, 'message' | 'createdAt' | 'expiresAt' | 'acceptedAt' | 'moderation'> & {
  createdAt: string
  expiresAt: string | null
  acceptedAt: string | null
}

interface RawChange extends Omit<RawInvite, 'uri' | 'sort_us'> {
  id: number
  kind: ChangeKind
  at: Date
  /** A removal: the view last pushed, when the invite is of a party asked for. */
  removed_view: StoredView | null
  /** null: not the invite of a party asked for, or not held, or a removal. */
  uri: string | null
  served: boolean
  was_pushed: boolean
}

const subjectRepo = (subjectUri: string): string => subjectUri.split('/')[2] ?? ''

// A page of the feed by id, each with its invite's view when `$3` (a party DID, or NULL for
// every party) is one of its parties: a removal's stored view, any other change's current one.
// The page is cut on the feed, not on the matches, so a caller learns how far it has read even
// when nothing in the page is its own.
const PAGE = `
  WITH page AS (SELECT id, invite_uri, kind, at, removed_view FROM invite_change WHERE id > $1 ORDER BY id LIMIT $2)
  SELECT p.id, p.kind, p.at,
         CASE WHEN $3::text IS NULL OR $3 IN (p.removed_view->>'inviter', p.removed_view->>'invitee',
                                             split_part(p.removed_view->>'subjectUri', '/', 3))
              THEN p.removed_view END AS removed_view,
         i.uri, i.inviter, i.invitee, i.subject_uri, i.subject_collection, i.role, i.message,
         i.created_at, i.expires_at, acc.uri AS acceptance_uri, acc.created_at AS accepted_at, ${STATE} AS state,
         coalesce(${SERVABLE}, false) AS served,
         p.kind IN ('deleted', 'subjectDeleted', 'takenDown') AND EXISTS (
           SELECT 1 FROM invite_change e WHERE e.invite_uri = p.invite_uri AND e.id < p.id
             AND e.kind IN ('created', 'updated')) AS was_pushed
  FROM page p
  LEFT JOIN invite i ON i.uri = p.invite_uri AND p.removed_view IS NULL
    AND ($3::text IS NULL OR i.invitee = $3 OR i.inviter = $3 OR split_part(i.subject_uri, '/', 3) = $3)
  LEFT JOIN LATERAL (${ACCEPTANCE_OF_INVITE}) acc ON i.uri IS NOT NULL AND i.deleted_at IS NULL
  ORDER BY p.id`

const fromStored = (v: StoredView): InviteRow => ({
  ...v,
  // What a removal hid is not sent again (the feed does not even keep it).
  message: null,
  createdAt: new Date(v.createdAt),
  expiresAt: v.expiresAt === null ? null : new Date(v.expiresAt),
  acceptedAt: v.acceptedAt === null ? null : new Date(v.acceptedAt),
})

const partiesOf = (i: { inviter: string; invitee: string; subjectUri: string }): string[] =>
  [...new Set([i.inviter, i.invitee, subjectRepo(i.subjectUri)])]

const toChange = (r: RawChange): InviteChange => {
  if (r.removed_view) {
    const invite = fromStored(r.removed_view)
    return { id: r.id, kind: r.kind, at: r.at, invite, parties: partiesOf(invite) }
  }
  const deliverable = r.uri !== null && (r.served || (LEGACY_REMOVALS.has(r.kind) && r.was_pushed))
  return {
    id: r.id,
    kind: r.kind,
    at: r.at,
    invite: deliverable
      ? {
          uri: r.uri as string,
          inviter: r.inviter,
          invitee: r.invitee,
          subjectUri: r.subject_uri,
          subjectCollection: r.subject_collection,
          role: r.role,
          // What a moderator or the subject's deletion hid is not sent again.
          message: r.served ? r.message : null,
          state: r.state,
          createdAt: r.created_at,
          expiresAt: r.expires_at,
          acceptanceUri: r.acceptance_uri,
          acceptedAt: r.accepted_at,
        }
      : null,
    parties: r.uri === null ? [] : partiesOf({ inviter: r.inviter, invitee: r.invitee, subjectUri: r.subject_uri }),
  }
}

/**
 * Up to `limit` feed entries after `after`, in order; `party` narrows the views to invites of
 * that DID (the others come back with `invite: null`, so the position still moves).
 */
export const changesAfter = async (pool: Pool, after: number, limit: number, party: string | null = null): Promise<InviteChange[]> => {
  const res = await pool.query<RawChange>(prepared(PAGE, [after, limit, party]))
  return res.rows.map(toChange)
}

export interface FeedBounds {
  /** Highest id committed (0 when none). */
  head: number
  /** Highest id the retention purged: a cursor below it has missed changes. */
  purgedThrough: number
  feedId: string
}

export const feedBounds = async (pool: Pool): Promise<FeedBounds> => {
  const res = await pool.query<{ head: number; purged_through: number; feed_id: string }>(
    `SELECT coalesce((SELECT max(id) FROM invite_change), f.purged_through) AS head, f.purged_through, f.feed_id::text
     FROM change_feed f`,
  )
  const row = res.rows[0]
  return { head: row?.head ?? 0, purgedThrough: row?.purged_through ?? 0, feedId: row?.feed_id ?? '' }
}

export const CHANGE_CHANNEL = 'chive_invite_change'
/** The LISTEN connection's `application_name` (Postgres keeps its first 63 bytes). */
export const listenApplicationName = (schema: string): string => `chive-collab-indexer:listen:${schema}`.slice(0, 63)

/**
 * A connection of its own that LISTENs for feed commits of `schema`; `onChange` on each (and
 * after a reconnect, since notifications sent while away are lost), `onError` when it drops.
 */
export const listenForChanges = async (
  url: string,
  schema: string,
  onChange: () => void,
  onError: (err: Error) => void,
): Promise<{ close(): Promise<void> }> => {
  // Named, so that operators (and tests) can tell it apart in pg_stat_activity.
  const client = new pg.Client({ connectionString: url, keepAlive: true, application_name: listenApplicationName(schema) })
  client.on('notification', (n) => {
    if (n.channel === CHANGE_CHANNEL && n.payload === schema) onChange()
  })
  let closing = false
  client.on('error', onError)
  client.on('end', () => {
    if (!closing) onError(new Error('the LISTEN connection ended'))
  })
  await client.connect()
  await client.query(`LISTEN ${CHANGE_CHANNEL}`)
  return {
    close: () => {
      closing = true
      return client.end().catch(() => {})
    },
  }
}
