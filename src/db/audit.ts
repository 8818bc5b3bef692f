import type { Pool, PoolClient } from './pool.ts'
import { ACCEPTANCE_NSID, INVITE_NSID, type AcceptanceWrite, type AccountStatus, type InviteWrite, type RecordDelete, type Rejection } from './effects.ts'

type Db = Pool | PoolClient

export type AuditEventName =
  | 'create'
  | 'update'
  | 'delete'
  | 'rejection'
  | 'verification'
  | 'account'
  | 'expiry'
  | 'takedown'
  | 'restore'
  | 'block'
  | 'unblock'

export interface AuditEvent {
  id: number
  subject: string
  inviteUri: string | null
  collection: string | null
  repo: string | null
  event: AuditEventName
  reason: string | null
  detail: string | null
  message: string | null
  record: Record<string, unknown> | null
  seq: number | null
  rev: string | null
  cid: string | null
  actor: string | null
  actorKind: string | null
  at: Date
}

/** Who took a moderator action, as proven by the admin auth. */
export interface Moderator {
  actor: string
  kind: 'password' | 'service-auth'
}

/**
 * Before an invite or acceptance version is stored: 'create' unless a live version exists.
 * The message is kept apart from the rest of the version so a delete can purge it alone.
 */
export const auditWrite = (client: PoolClient, w: InviteWrite | AcceptanceWrite) => {
  const isInvite = w.kind === 'invite'
  const live = isInvite
    ? 'SELECT 1 FROM invite WHERE uri = $1 AND deleted_at IS NULL'
    : 'SELECT 1 FROM acceptance WHERE uri = $1'
  const record = isInvite
    ? {
        subject: { uri: w.subjectUri, cid: w.subjectCid },
        invitee: w.invitee,
        role: w.role,
        createdAt: w.createdAt.toISOString(),
        expiresAt: w.expiresAt?.toISOString(),
      }
    : {
        invite: { uri: w.inviteUri, cid: w.inviteCid },
        subject: { uri: w.subjectUri, cid: w.subjectCid },
        lenient: w.lenient,
        createdAt: w.createdAt.toISOString(),
      }
  return client.query(
    `INSERT INTO audit_event (subject, invite_uri, collection, repo, event, message, record, seq, rev, cid)
     SELECT $1, $2, $3, $4, CASE WHEN EXISTS (${live}) THEN 'update' ELSE 'create' END, $5, $6, $7, $8, $9`,
    [w.uri, isInvite ? null : w.inviteUri, isInvite ? INVITE_NSID : ACCEPTANCE_NSID, w.repo,
     isInvite ? (w.message ?? null) : null, JSON.stringify(record), w.seq, w.rev, w.cid],
  )
}

/** The author deleted the record: the history stays, the author's words in it go. */
export const auditDelete = (client: PoolClient, d: RecordDelete) =>
  client.query(
    `WITH purged AS (UPDATE audit_event SET message = NULL WHERE subject = $1 AND message IS NOT NULL)
     INSERT INTO audit_event (subject, invite_uri, collection, repo, event, seq, rev)
     SELECT $1, (SELECT invite_uri FROM audit_event WHERE subject = $1 AND invite_uri IS NOT NULL ORDER BY id DESC LIMIT 1),
            $2, $3, 'delete', $4, $5`,
    [d.uri, d.collection, d.repo, d.seq, d.rev],
  )

/** Once per fact: an event that could not be trusted carries no rev to guard a replay. */
export const auditRejection = async (client: PoolClient, r: Rejection): Promise<void> => {
  if (r.uri === undefined) return
  await client.query(
    `INSERT INTO audit_event (subject, collection, repo, event, reason, detail, seq, rev, cid)
     SELECT $1, $2, $3, 'rejection', $4, $5, $6, $7, $8
     WHERE NOT EXISTS (SELECT 1 FROM audit_event WHERE subject = $1 AND event = 'rejection' AND reason = $4
                         AND seq IS NOT DISTINCT FROM $6 AND cid IS NOT DISTINCT FROM $8)`,
    [r.uri, r.collection ?? null, r.repo ?? null, r.reason, r.detail ?? null, r.seq ?? null, r.rev ?? null, r.cid ?? null],
  )
}

/**
 * Before an #account event is applied: recorded when the status changes, and only for DIDs
 * that wrote or received an invite or acceptance (the relay reports every account). A deleted
 * account's records go, and with them its words in the history.
 */
export const auditAccount = (client: PoolClient, a: AccountStatus) =>
  client.query(
    `INSERT INTO audit_event (subject, event, reason, seq)
     SELECT $1, 'account', $2, $3
     WHERE coalesce((SELECT CASE WHEN active THEN 'active' ELSE coalesce(status, 'inactive') END FROM account WHERE did = $1),
                    'active') <> $2
       AND (EXISTS (SELECT 1 FROM invite WHERE inviter = $1) OR EXISTS (SELECT 1 FROM invite WHERE invitee = $1)
            OR EXISTS (SELECT 1 FROM acceptance WHERE author = $1))`,
    [a.did, a.active ? 'active' : (a.status ?? 'inactive'), a.seq],
  )

/** A deleted account's words go from the history of everything it wrote. */
export const purgeAccountMessages = (client: PoolClient, did: string) =>
  client.query('UPDATE audit_event SET message = NULL WHERE repo = $1 AND message IS NOT NULL', [did])

/** A moderator action about an invite URI or an inviter DID. */
export const auditModeration = (client: Db, subject: string, event: AuditEventName, reason: string, by: Moderator) =>
  client.query(
    `INSERT INTO audit_event (subject, collection, repo, event, reason, actor, actor_kind)
     SELECT $1, CASE WHEN $1 LIKE 'at://%' THEN $5 END, (SELECT inviter FROM invite WHERE uri = $1), $2, $3, $4, $6`,
    [subject, event, reason, by.actor, INVITE_NSID, by.kind],
  )

const EVENT_COLUMNS = `id, subject, invite_uri AS "inviteUri", collection, repo, event, reason, detail, message, record,
  seq, rev, cid, actor, actor_kind AS "actorKind", at`

/**
 * Everything that happened to an invite, oldest first: its own events, those of the
 * acceptances that name it, and the account and block events of its inviter and invitee.
 * null when the service never saw the invite.
 */
export const inviteHistory = async (pool: Pool, uri: string): Promise<AuditEvent[] | null> => {
  const res = await pool.query<AuditEvent>(
    `WITH parties AS (
       SELECT DISTINCT repo AS did FROM audit_event WHERE subject = $1 AND repo IS NOT NULL
       UNION SELECT DISTINCT record->>'invitee' FROM audit_event WHERE subject = $1 AND record ? 'invitee'
     )
     SELECT ${EVENT_COLUMNS} FROM audit_event WHERE subject = $1
     UNION ALL SELECT ${EVENT_COLUMNS} FROM audit_event WHERE invite_uri = $1
     UNION ALL SELECT ${EVENT_COLUMNS} FROM audit_event
       WHERE subject IN (SELECT did FROM parties) AND event IN ('account', 'block', 'unblock')
     ORDER BY id`,
    [uri],
  )
  return res.rows.length === 0 ? null : res.rows
}
