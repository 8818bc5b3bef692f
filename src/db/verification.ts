import type { Pool, PoolClient } from './pool.ts'
import { CHIVE_PREFIX, INVITE_NSID, type InviteWrite, type SubjectWrite } from './effects.ts'
import { fencedQuery, fencedTransaction } from './fence.ts'

export type Verification = 'pending' | 'verified' | 'subject-missing' | 'cid-mismatch' | 'not-chive-record' | 'subject-deleted'

interface Decision {
  state: Verification
  reason: string
}

type Db = Pool | PoolClient

/**
 * Sets the verification of the invites matching `where` (over `params`) and appends the outcome
 * to each one's audit trail, in one statement; returns their URIs. `decide` also stamps the
 * time, `queue` clears it, `note` changes only the reason (the state stays; the audit says
 * what happened).
 */
const changeVerification = async (
  db: Db,
  where: string,
  params: unknown[],
  outcome: { state: string; reason: string },
  source: { seq?: number | null; rev?: string; cid?: string },
  mode: 'decide' | 'queue' | 'note' = 'decide',
): Promise<string[]> => {
  const n = params.length
  const [state, reason] = [`$${n + 1}`, `$${n + 2}`]
  const set =
    mode === 'note'
      ? `verification_reason = ${reason}`
      : `verification = ${state}, verification_reason = ${reason}, verified_at = ${mode === 'decide' ? 'now()' : 'NULL'}`
  const res = await db.query<{ uri: string }>(
    `WITH changed AS (UPDATE invite SET ${set} WHERE ${where} RETURNING uri, inviter, cid)
     INSERT INTO audit_event (subject, collection, repo, event, reason, detail, seq, rev, cid)
     SELECT c.uri, $${n + 3}, c.inviter, 'verification', ${state}::text, ${reason}::text, $${n + 4}::bigint, $${n + 5}::text, coalesce($${n + 6}::text, c.cid)
     FROM changed c
     RETURNING subject AS uri`,
    [...params, outcome.state, outcome.reason, INVITE_NSID, source.seq ?? null, source.rev ?? null, source.cid ?? null],
  )
  return res.rows.map((r) => r.uri)
}

/** What the verified stream already tells about an invite's subject, if enough. */
const decideFromStream = async (client: PoolClient, w: InviteWrite): Promise<Decision | null> => {
  if (!w.subjectCollection.startsWith(CHIVE_PREFIX)) {
    return { state: 'not-chive-record', reason: `${w.subjectCollection} is not a Chive record` }
  }
  const res = await client.query<{ deleted: boolean; complete: boolean; seen: boolean }>(
    `SELECT s.deleted, s.complete,
            EXISTS (SELECT 1 FROM subject_version v WHERE v.uri = s.uri AND v.cid = $2) AS seen
     FROM subject_record s WHERE s.uri = $1`,
    [w.subjectUri, w.subjectCid],
  )
  const row = res.rows[0]
  if (!row) return null
  if (row.deleted) return { state: 'subject-missing', reason: 'the subject was deleted before the invite' }
  if (row.seen) return { state: 'verified', reason: 'subject version seen on the verified stream' }
  if (row.complete) return { state: 'cid-mismatch', reason: 'the stated CID was never a version of the subject' }
  return null
}

/**
 * Decides a new or updated invite's verification from what the stream showed, or queues it
 * for a proof from the inviter's PDS. Returns true when queued.
 */
export const settleInviteVerification = async (client: PoolClient, w: InviteWrite): Promise<boolean> => {
  const decision = await decideFromStream(client, w)
  if (decision) {
    await changeVerification(client, 'uri = $1 AND cid = $2', [w.uri, w.cid], decision, w)
    await client.query('DELETE FROM verify_queue WHERE invite_uri = $1', [w.uri])
    return false
  }
  const queued: Decision = { state: 'pending', reason: "awaiting proof from the inviter's PDS" }
  await changeVerification(client, 'uri = $1', [w.uri], queued, w, 'queue')
  await client.query(
    `INSERT INTO verify_queue (invite_uri, invite_cid) VALUES ($1, $2)
     ON CONFLICT (invite_uri) DO UPDATE SET invite_cid = excluded.invite_cid, attempts = 0,
       next_attempt_at = now(), last_error = NULL, enqueued_at = now()`,
    [w.uri, w.cid],
  )
  return true
}

/** A Chive record changed on the stream: remember its version, or end invites to it. */
export const applySubjectToInvites = async (client: PoolClient, w: SubjectWrite): Promise<void> => {
  if (w.cid === null) {
    await client.query(
      `INSERT INTO subject_record (uri, repo, collection, cid, deleted) VALUES ($1, $2, $3, NULL, true)
       ON CONFLICT (uri) DO UPDATE SET cid = NULL, deleted = true, complete = false, updated_at = now()`,
      [w.uri, w.repo, w.collection],
    )
    // Versions of the deleted record must not vouch for invites if the URI is used again.
    await client.query('DELETE FROM subject_version WHERE uri = $1', [w.uri])
    const ended: Decision = { state: 'subject-deleted', reason: 'the subject was deleted' }
    await changeVerification(client, `subject_uri = $1 AND verification IN ('verified', 'pending')`, [w.uri], ended, { seq: w.seq, rev: w.rev })
    await client.query(
      `DELETE FROM verify_queue q USING invite i WHERE q.invite_uri = i.uri AND i.subject_uri = $1`,
      [w.uri],
    )
    return
  }
  await client.query(
    `INSERT INTO subject_record (uri, repo, collection, cid, deleted, complete) VALUES ($1, $2, $3, $4, false, $5)
     ON CONFLICT (uri) DO UPDATE SET cid = excluded.cid, deleted = false,
       complete = subject_record.complete OR excluded.complete, updated_at = now()`,
    [w.uri, w.repo, w.collection, w.cid, w.action === 'create'],
  )
  await client.query('INSERT INTO subject_version (uri, cid) VALUES ($1, $2) ON CONFLICT DO NOTHING', [w.uri, w.cid])
  // Invites still waiting for a proof of exactly this version have it now.
  const seen: Decision = { state: 'verified', reason: 'subject version seen on the verified stream' }
  const proven = await changeVerification(
    client,
    `subject_uri = $1 AND subject_cid = $2 AND verification = 'pending'`,
    [w.uri, w.cid],
    seen,
    { seq: w.seq, rev: w.rev },
  )
  if (proven.length > 0) await client.query('DELETE FROM verify_queue WHERE invite_uri = ANY($1)', [proven])
}

/** Queues again the unverified invites of `inviter` that had left the queue. Returns how many. */
export const requeueStalledProofs = async (client: PoolClient, inviter: string): Promise<number> => {
  const res = await client.query(
    `INSERT INTO verify_queue (invite_uri, invite_cid)
     SELECT uri, cid FROM invite WHERE inviter = $1 AND verification = 'pending' AND deleted_at IS NULL
     ON CONFLICT (invite_uri) DO NOTHING`,
    [inviter],
  )
  return res.rowCount ?? 0
}

export interface VerifyJob {
  inviteUri: string
  inviteCid: string
  attempts: number
  /** null when the invite is gone or no longer waits for this proof. */
  invite: { inviter: string; subjectUri: string; subjectCid: string } | null
}

/*
 * The verifier's writes (claims, proofs, retries) are the ingest leader's: each one is fenced
 * (src/db/fence.ts), so a deposed leader's lands nowhere, not even a lease that would hold a job
 * back from the new leader.
 */

/**
 * Leases up to `limit` due jobs: their next attempt moves `leaseMs` ahead, so a crashed
 * worker's jobs come back by themselves and two replicas never take the same one.
 */
export const claimJobs = async (pool: Pool, limit: number, leaseMs: number): Promise<VerifyJob[]> => {
  const res = await fencedQuery<{
    invite_uri: string
    invite_cid: string
    attempts: number
    inviter: string | null
    subject_uri: string | null
    subject_cid: string | null
  }>(
    pool,
    `WITH due AS (
       SELECT invite_uri FROM verify_queue WHERE next_attempt_at <= now()
       ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
     ), leased AS (
       UPDATE verify_queue q SET next_attempt_at = now() + $2 * interval '1 millisecond'
       FROM due WHERE q.invite_uri = due.invite_uri
       RETURNING q.invite_uri, q.invite_cid, q.attempts
     )
     SELECT l.invite_uri, l.invite_cid, l.attempts, i.inviter, i.subject_uri, i.subject_cid
     FROM leased l
     LEFT JOIN invite i ON i.uri = l.invite_uri AND i.cid = l.invite_cid AND i.verification = 'pending'
       AND i.deleted_at IS NULL`,
    [limit, leaseMs],
  )
  return res.rows.map((r) => ({
    inviteUri: r.invite_uri,
    inviteCid: r.invite_cid,
    attempts: r.attempts,
    invite:
      r.inviter && r.subject_uri && r.subject_cid
        ? { inviter: r.inviter, subjectUri: r.subject_uri, subjectCid: r.subject_cid }
        : null,
  }))
}

const deleteJob = (db: Db, job: VerifyJob) =>
  db.query('DELETE FROM verify_queue WHERE invite_uri = $1 AND invite_cid = $2', [job.inviteUri, job.inviteCid])

export const dropJob = (pool: Pool, job: VerifyJob) => fencedTransaction(pool, (client) => deleteJob(client, job))

/**
 * Records what the inviter's repo proved about the subject: `currentCid` is the subject's
 * signed current CID, or null when the repo proved it absent. Returns the decision taken.
 */
export const recordProof = async (
  pool: Pool,
  job: VerifyJob & { invite: NonNullable<VerifyJob['invite']> },
  subject: { repo: string; collection: string; currentCid: string | null },
): Promise<Decision> =>
  fencedTransaction(pool, async (client) => {
    const { subjectUri, subjectCid } = job.invite
    if (subject.currentCid !== null) {
      // The subject's row, locked until this commits: a delete on the stream either came first
      // (and is seen here) or waits, then removes the version added below.
      const row = await client.query<{ deleted: boolean }>(
        `INSERT INTO subject_record (uri, repo, collection, cid) VALUES ($1, $2, $3, $4)
         ON CONFLICT (uri) DO UPDATE SET updated_at = subject_record.updated_at
         RETURNING deleted`,
        [subjectUri, subject.repo, subject.collection, subject.currentCid],
      )
      // The stream's word wins over a proof fetched before a delete it has since shown.
      if (row.rows[0]?.deleted !== true) {
        await client.query('INSERT INTO subject_version (uri, cid) VALUES ($1, $2) ON CONFLICT DO NOTHING', [subjectUri, subject.currentCid])
      }
    }
    const seen = await client.query('SELECT 1 FROM subject_version WHERE uri = $1 AND cid = $2', [subjectUri, subjectCid])
    const decision: Decision =
      subject.currentCid === null
        ? { state: 'subject-missing', reason: "the inviter's repo proves the subject does not exist" }
        : (seen.rowCount ?? 0) > 0
          ? { state: 'verified', reason: "subject proven from the inviter's signed repo" }
          : { state: 'cid-mismatch', reason: `the subject's proven CID is ${subject.currentCid}, not ${subjectCid}` }
    await changeVerification(client, `uri = $1 AND cid = $2 AND verification = 'pending'`, [job.inviteUri, job.inviteCid], decision, { cid: job.inviteCid })
    await deleteJob(client, job)
    return decision
  })

/**
 * Schedules another attempt after a failure that says nothing about the subject (timeout,
 * 429, PDS down). After `maxAttempts` the invite stays unverified and leaves the queue.
 */
export const recordRetry = (
  pool: Pool,
  job: VerifyJob,
  error: string,
  delayMs: number,
  maxAttempts: number,
): Promise<'retry' | 'gave-up'> =>
  fencedTransaction(pool, async (client) => {
    if (job.attempts + 1 >= maxAttempts) {
      await deleteJob(client, job)
      const reason = `no proof after ${maxAttempts} attempts: ${error}`
      await changeVerification(
        client,
        `uri = $1 AND cid = $2 AND verification = 'pending'`,
        [job.inviteUri, job.inviteCid],
        { state: 'gave-up', reason },
        { cid: job.inviteCid },
        'note',
      )
      return 'gave-up'
    }
    await client.query(
      `UPDATE verify_queue SET attempts = attempts + 1, last_error = $3,
              next_attempt_at = now() + $4 * interval '1 millisecond'
       WHERE invite_uri = $1 AND invite_cid = $2`,
      [job.inviteUri, job.inviteCid, error, delayMs],
    )
    return 'retry'
  })

export interface QueueStats {
  depth: number
  oldestAgeSeconds: number | null
}

export const queueStats = async (pool: Pool): Promise<QueueStats> => {
  const res = await pool.query<{ depth: number; oldest: number | null }>(
    `SELECT count(*)::int AS depth, extract(epoch FROM now() - min(enqueued_at))::float8 AS oldest FROM verify_queue`,
  )
  const row = res.rows[0]
  return { depth: row?.depth ?? 0, oldestAgeSeconds: row?.oldest ?? null }
}

/** The subject verifier's counters (workers/subject-verifier.ts), as status and metrics read them. */
export interface VerifierStatus {
  outcomes: Record<string, number>
  retries: Record<string, number>
  gaveUp: number
  inFlight: number
}
