import type { Pool, PoolClient } from './pool.ts'
import { fencedTransaction } from './fence.ts'
import { INVITE_NSID, type Effect, type InviteWrite, type AcceptanceWrite, type RecordDelete, type Rejection, type AccountStatus, type SubjectWrite, type RepoPosition } from './effects.ts'
import { requestFullBackfill } from './backfill.ts'
import { advanceRepoState, advanceRepoStates, requestResync } from './repo-state.ts'
import { settleInviteVerification, applySubjectToInvites, requeueStalledProofs } from './verification.ts'
import { auditAccount, auditDelete, auditRejection, auditWrite, purgeAccountMessages } from './audit.ts'

/** Outcome counts of one committed batch, for metrics and logs. */
export interface BatchResult {
  applied: number
  stale: number
  /** Invites queued for a proof of their subject from the inviter's PDS. */
  queued: number
}

/**
 * Applies effects in order in one fenced transaction (src/db/fence.ts); `finish` runs last in the
 * same transaction.
 */
export const applyEffects = (
  pool: Pool,
  effects: readonly Effect[],
  finish?: (client: PoolClient) => Promise<unknown>,
): Promise<BatchResult> =>
  fencedTransaction(pool, async (client) => {
    const result: BatchResult = { applied: 0, stale: 0, queued: 0 }
    // Chain positions go in one statement: a batch can carry one for every active tracked repo.
    const positions: RepoPosition[] = []
    for (const effect of effects) {
      if (effect.kind === 'repo') {
        positions.push(effect)
        continue
      }
      const outcome = await applyEffect(client, effect)
      if (outcome === false) result.stale++
      else result.applied++
      if (outcome === 'queued') result.queued++
    }
    await advanceRepoStates(client, positions)
    result.applied += positions.length
    await finish?.(client)
    return result
  })

/**
 * Applies effects and moves the relay cursor to `cursor` in the same transaction: the stored
 * cursor never passes an event whose effect is not committed.
 */
export const commitBatch = (pool: Pool, relayUrl: string, effects: readonly Effect[], cursor: number, status: unknown) =>
  applyEffects(pool, effects, (client) =>
    client.query(
      `INSERT INTO relay_cursor (relay_url, seq, status) VALUES ($1, $2, $3)
       ON CONFLICT (relay_url) DO UPDATE SET seq = excluded.seq, status = excluded.status, updated_at = now()`,
      [relayUrl, cursor, JSON.stringify(status)],
    ),
  )

/** false: stale, nothing done; 'queued': applied, and a subject proof must be fetched. */
type Outcome = boolean | 'queued'

const applyEffect = (client: PoolClient, effect: Effect): Promise<Outcome> => {
  switch (effect.kind) {
    case 'invite':
      return applyInvite(client, effect)
    case 'acceptance':
      return applyAcceptance(client, effect)
    case 'subject':
      return applySubject(client, effect)
    case 'delete':
      return applyDelete(client, effect)
    case 'rejection':
      return applyRejection(client, effect)
    case 'account':
      return applyAccount(client, effect)
    case 'identity':
      return requeueStalledProofs(client, effect.did).then((n) => (n > 0 ? 'queued' : true))
    case 'repo':
      return advanceRepoState(client, effect.did, effect.rev, effect.dataCid, false).then(() => true)
    case 'resync':
      return requestResync(client, effect.did, effect.reason).then(() => true)
    case 'gap':
      return requestFullBackfill(client, effect.reason).then(() => true)
  }
}

/** Claims the record's rev; false when an equal or newer rev was already applied. */
const claimRev = async (client: PoolClient, uri: string, rev: string, deleted: boolean, seq: number | null | undefined): Promise<boolean> => {
  const res = await client.query(
    `INSERT INTO record_rev (uri, rev, deleted, seq) VALUES ($1, $2, $3, $4)
     ON CONFLICT (uri) DO UPDATE SET rev = excluded.rev, deleted = excluded.deleted, seq = excluded.seq, updated_at = now()
     WHERE record_rev.rev < excluded.rev`,
    [uri, rev, deleted, seq ?? null],
  )
  return res.rowCount === 1
}

const applyInvite = async (client: PoolClient, w: InviteWrite): Promise<Outcome> => {
  if (!(await claimRev(client, w.uri, w.rev, false, w.seq))) return false
  await auditWrite(client, w)
  await client.query(
    `INSERT INTO invite (uri, inviter, cid, rev, subject_uri, subject_cid, subject_collection, invitee,
                         role, message, created_at, expires_at, sort_at, seq)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, LEAST($11::timestamptz, now()), $13)
     ON CONFLICT (uri) DO UPDATE SET
       cid = excluded.cid, rev = excluded.rev, subject_uri = excluded.subject_uri,
       subject_cid = excluded.subject_cid, subject_collection = excluded.subject_collection,
       invitee = excluded.invitee, role = excluded.role, message = excluded.message,
       created_at = excluded.created_at, expires_at = excluded.expires_at,
       sort_at = CASE WHEN invite.deleted_at IS NULL THEN invite.sort_at ELSE excluded.sort_at END,
       deleted_at = NULL, updated_at = now(), seq = excluded.seq`,
    [w.uri, w.repo, w.cid, w.rev, w.subjectUri, w.subjectCid, w.subjectCollection, w.invitee,
     w.role ?? null, w.message ?? null, w.createdAt, w.expiresAt ?? null, w.seq],
  )
  await client.query('INSERT INTO invite_version (uri, cid) VALUES ($1, $2) ON CONFLICT DO NOTHING', [w.uri, w.cid])
  return (await settleInviteVerification(client, w)) ? 'queued' : true
}

const applySubject = async (client: PoolClient, w: SubjectWrite): Promise<Outcome> => {
  if (!(await claimRev(client, w.uri, w.rev, w.cid === null, w.seq))) return false
  await applySubjectToInvites(client, w)
  return true
}

const applyAcceptance = async (client: PoolClient, w: AcceptanceWrite): Promise<boolean> => {
  if (!(await claimRev(client, w.uri, w.rev, false, w.seq))) return false
  await auditWrite(client, w)
  await client.query(
    `INSERT INTO acceptance (uri, author, cid, rev, invite_uri, invite_cid, subject_uri, subject_cid, lenient, created_at, seq)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (uri) DO UPDATE SET
       cid = excluded.cid, rev = excluded.rev, invite_uri = excluded.invite_uri, invite_cid = excluded.invite_cid,
       subject_uri = excluded.subject_uri, subject_cid = excluded.subject_cid, lenient = excluded.lenient,
       created_at = excluded.created_at, updated_at = now(), seq = excluded.seq`,
    [w.uri, w.repo, w.cid, w.rev, w.inviteUri, w.inviteCid, w.subjectUri, w.subjectCid, w.lenient, w.createdAt, w.seq],
  )
  return true
}

const applyDelete = async (client: PoolClient, d: RecordDelete): Promise<boolean> => {
  if (!(await claimRev(client, d.uri, d.rev, true, d.seq))) return false
  await auditDelete(client, d)
  if (d.collection === INVITE_NSID) {
    await client.query('DELETE FROM verify_queue WHERE invite_uri = $1', [d.uri])
    // Kept as a tombstone so Chive's "rejected" state can be served; the inviter's words go.
    await client.query(
      `UPDATE invite SET deleted_at = now(), message = NULL, rev = $2, seq = $3, updated_at = now()
       WHERE uri = $1 AND deleted_at IS NULL`,
      [d.uri, d.rev, d.seq],
    )
  } else {
    await client.query('DELETE FROM acceptance WHERE uri = $1', [d.uri])
  }
  return true
}

const applyRejection = async (client: PoolClient, r: Rejection): Promise<boolean> => {
  if (r.uri !== undefined && r.rev !== undefined) {
    // A verified but invalid version replaces whatever valid version we served.
    if (!(await claimRev(client, r.uri, r.rev, false, r.seq))) return false
    if (r.collection === INVITE_NSID) await client.query('DELETE FROM invite WHERE uri = $1', [r.uri])
    else await client.query('DELETE FROM acceptance WHERE uri = $1', [r.uri])
  }
  await auditRejection(client, r)
  await client.query(
    `INSERT INTO rejection (uri, collection, repo, rev, cid, seq, reason, detail, record)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT DO NOTHING`,
    [r.uri ?? null, r.collection ?? null, r.repo ?? null, r.rev ?? null, r.cid ?? null, r.seq ?? null,
     r.reason, r.detail ?? null, r.record === undefined ? null : JSON.stringify(r.record)],
  )
  return true
}

const applyAccount = async (client: PoolClient, a: AccountStatus): Promise<boolean> => {
  await auditAccount(client, a)
  // Only inactive accounts are stored: the table stays as small as the set it filters out.
  if (a.active) {
    await client.query('DELETE FROM account WHERE did = $1', [a.did])
    return true
  }
  await client.query(
    `INSERT INTO account (did, active, status, seq) VALUES ($1, $2, $3, $4)
     ON CONFLICT (did) DO UPDATE SET active = excluded.active, status = excluded.status, seq = excluded.seq, updated_at = now()`,
    [a.did, a.active, a.status ?? null, a.seq],
  )
  if (a.status === 'deleted') {
    await purgeAccountMessages(client, a.did)
    await client.query('DELETE FROM invite WHERE inviter = $1', [a.did])
    await client.query('DELETE FROM acceptance WHERE author = $1', [a.did])
  }
  return true
}
