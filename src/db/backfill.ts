import type { Pool, PoolClient } from './pool.ts'
import { inTransaction } from './transaction.ts'
import type { RepoJob } from './repo-state.ts'

type Db = Pool | PoolClient

/**
 * Starts a full backfill. When one is already under way, another is scheduled to follow it
 * (repos it synced before the gap may miss it). Returns the new run's id, or null.
 */
export const requestFullBackfill = async (db: Db, reason: string): Promise<number | null> => {
  const res = await db.query<{ id: number }>(
    `INSERT INTO backfill_run (kind, reason) VALUES ('full', $1) ON CONFLICT DO NOTHING RETURNING id`,
    [reason],
  )
  const id = res.rows[0]?.id
  if (id !== undefined) return id
  await db.query(
    `UPDATE backfill_run SET followup_reason = $1 WHERE kind = 'full' AND status <> 'done'`,
    [reason],
  )
  return null
}

/**
 * A backfill of the given repos only: nothing to discover. The run and its repos appear in one
 * transaction; a run seen without its repos would look finished and be closed at once.
 */
export const createDidRun = (pool: Pool, dids: readonly string[], reason: string): Promise<number> =>
  inTransaction(pool, async (client) => {
    const res = await client.query<{ id: number }>(
      `INSERT INTO backfill_run (kind, reason, status, discovered_at) VALUES ('dids', $1, 'syncing', now()) RETURNING id`,
      [reason],
    )
    const id = res.rows[0]?.id as number
    await addDiscovered(client, id, dids, reason)
    return id
  })

export interface BackfillRun {
  id: number
  kind: 'full' | 'dids'
  reason: string
  status: 'discovering' | 'syncing' | 'done'
  discovery: Record<string, string | null>
  createdAt: Date
}

export const activeRuns = async (pool: Pool): Promise<BackfillRun[]> => {
  const res = await pool.query<{
    id: number
    kind: 'full' | 'dids'
    reason: string
    status: BackfillRun['status']
    discovery: Record<string, string | null>
    created_at: Date
  }>(`SELECT id, kind, reason, status, discovery, created_at FROM backfill_run WHERE status <> 'done' ORDER BY id`)
  return res.rows.map((r) => ({ id: r.id, kind: r.kind, reason: r.reason, status: r.status, discovery: r.discovery, createdAt: r.created_at }))
}

/** A discovery page read: its progress saved, and any failure before it forgotten. */
export const saveDiscovery = (db: Db, runId: number, discovery: Record<string, string | null>) =>
  db.query(
    `UPDATE backfill_run SET discovery = $2, discovery_error = NULL, discovery_failures = 0, discovery_failed_at = NULL, discovery_retry_at = NULL
     WHERE id = $1`,
    [runId, JSON.stringify(discovery)],
  )

/** A discovery page that could not be read, for the health endpoint: why, how often, when next. */
export const discoveryFailed = (pool: Pool, runId: number, error: string, failures: number, retryInMs: number) =>
  pool.query(
    `UPDATE backfill_run SET discovery_error = $2, discovery_failures = $3, discovery_failed_at = now(),
            discovery_retry_at = now() + make_interval(secs => $4::double precision / 1000)
     WHERE id = $1`,
    [runId, error, failures, retryInMs],
  )

/**
 * Queues repos for a run. A repo already queued by this run keeps its state, so a discovery
 * resumed after a crash does not redo finished repos.
 */
export const addDiscovered = async (db: Db, runId: number, dids: readonly string[], reason: string): Promise<void> => {
  if (dids.length === 0) return
  await db.query(
    `INSERT INTO repo_sync (did, run_id, reason)
     SELECT did, $2, $3 FROM unnest($1::text[]) AS did
     ON CONFLICT (did) DO UPDATE SET run_id = excluded.run_id, reason = excluded.reason, status = 'pending',
       attempts = 0, next_attempt_at = now(), last_error = NULL, requested_at = now(), finished_at = NULL,
       generation = repo_sync.generation + 1
     WHERE repo_sync.run_id IS DISTINCT FROM excluded.run_id`,
    [dids, runId, reason],
  )
}

/**
 * Ends a full run's discovery. Discovery finds repos that hold our collections *now*; a repo whose
 * last invite or acceptance was deleted while we were not reading is not among them, yet only its
 * snapshot can show that what we hold is gone. So every repo the index holds records of (or
 * tracks) is queued too, in the same transaction as the run's move to 'syncing' (the caller's): the
 * run cannot be closed before they are queued.
 */
export const finishDiscovery = async (client: PoolClient, runId: number): Promise<void> => {
  const run = await client.query<{ reason: string }>(`SELECT reason FROM backfill_run WHERE id = $1`, [runId])
  const reason = run.rows[0]?.reason ?? 'full backfill'
  await client.query(
    `INSERT INTO repo_sync (did, run_id, reason)
     SELECT did, $1, $2 FROM (
       SELECT inviter AS did FROM invite WHERE deleted_at IS NULL
       UNION SELECT author FROM acceptance
       UNION SELECT repo FROM subject_record WHERE NOT deleted
       UNION SELECT did FROM repo_state
     ) held
     ON CONFLICT (did) DO UPDATE SET run_id = excluded.run_id, reason = excluded.reason, status = 'pending',
       attempts = 0, next_attempt_at = now(), last_error = NULL, requested_at = now(), finished_at = NULL,
       generation = repo_sync.generation + 1
     WHERE repo_sync.run_id IS DISTINCT FROM excluded.run_id`,
    [runId, reason],
  )
  await client.query(`UPDATE backfill_run SET status = 'syncing', discovered_at = now() WHERE id = $1`, [runId])
}

/** Whether the index holds any record at all: a start without a cursor is then a gap, not a first start. */
export const holdsRecords = async (db: Db): Promise<boolean> => {
  const res = await db.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM record_rev) OR EXISTS (SELECT 1 FROM subject_record) OR EXISTS (SELECT 1 FROM repo_state) AS held`,
  )
  return res.rows[0]?.held === true
}

/** Closes runs whose repos are all done or failed, and starts the full runs they owe. */
export const closeFinishedRuns = (pool: Pool): Promise<number[]> =>
  // One transaction: a crash between closing a run and starting the one it owes loses neither.
  inTransaction(pool, async (client) => {
    const res = await client.query<{ id: number; followup_reason: string | null }>(
      `UPDATE backfill_run r SET status = 'done', finished_at = now()
       WHERE r.status = 'syncing'
         AND NOT EXISTS (SELECT 1 FROM repo_sync s WHERE s.run_id = r.id AND s.status = 'pending')
       RETURNING r.id, r.followup_reason`,
    )
    for (const row of res.rows) if (row.followup_reason) await requestFullBackfill(client, row.followup_reason)
    return res.rows.map((r) => r.id)
  })

/** Leases due repos; an expired lease hands the repo to another worker. */
export const claimRepos = async (db: Db, limit: number, leaseMs: number): Promise<RepoJob[]> => {
  const res = await db.query<{ did: string; run_id: number | null; attempts: number; generation: number }>(
    `WITH due AS (
       SELECT did FROM repo_sync WHERE status = 'pending' AND next_attempt_at <= now()
       ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
     )
     UPDATE repo_sync s SET next_attempt_at = now() + $2 * interval '1 millisecond'
     FROM due WHERE s.did = due.did
     RETURNING s.did, s.run_id, s.attempts, s.generation`,
    [limit, leaseMs],
  )
  return res.rows.map((r) => ({ did: r.did, runId: r.run_id, attempts: r.attempts, generation: r.generation }))
}

/** The URIs of records of `did` that we hold and a repo snapshot must account for. */
export const heldRecords = async (db: Db, did: string): Promise<{ invites: string[]; acceptances: string[]; subjects: string[] }> => {
  const res = await db.query<{ kind: string; uri: string }>(
    `SELECT 'invite' AS kind, uri FROM invite WHERE inviter = $1 AND deleted_at IS NULL
     UNION ALL SELECT 'acceptance', uri FROM acceptance WHERE author = $1
     UNION ALL SELECT 'subject', uri FROM subject_record WHERE repo = $1 AND NOT deleted`,
    [did],
  )
  const out = { invites: [] as string[], acceptances: [] as string[], subjects: [] as string[] }
  for (const r of res.rows) {
    if (r.kind === 'invite') out.invites.push(r.uri)
    else if (r.kind === 'acceptance') out.acceptances.push(r.uri)
    else out.subjects.push(r.uri)
  }
  return out
}

export interface BackfillProgress {
  runs: {
    id: number
    kind: string
    reason: string
    status: string
    createdAt: string
    /** `left`: repos that failed the run's attempts and went on as resyncs of their own. */
    repos: { total: number; done: number; failed: number; pending: number; left: number }
    records: number
    /** Set while discovery is failing: the last error, failures in a row, the next attempt. */
    discovery?: { error: string; failures: number; failedAt: string | null; retryAt: string | null }
  }[]
  /**
   * Resyncs (repos synced outside a run): `retrying` are failing for transient reasons and are
   * tried again with a capped backoff until they succeed; `failed` ended in a verdict.
   */
  resync: { pending: number; retrying: number; failed: number; desynchronized: number; retries: ResyncRetry[] }
}

export interface ResyncRetry {
  did: string
  reason: string
  attempts: number
  lastError: string | null
  nextAttemptAt: string
}

export const backfillProgress = async (pool: Pool): Promise<BackfillProgress> => {
  const runs = await pool.query<{
    id: number
    kind: string
    reason: string
    status: string
    created_at: Date
    total: number
    done: number
    failed: number
    pending: number
    left: number
    records: number
    discovery_error: string | null
    discovery_failures: number
    discovery_failed_at: Date | null
    discovery_retry_at: Date | null
  }>(
    `SELECT r.id, r.kind, r.reason, r.status, r.created_at, r.discovery_error, r.discovery_failures, r.discovery_failed_at, r.discovery_retry_at,
            count(s.did)::int AS total,
            count(*) FILTER (WHERE s.status = 'done')::int AS done,
            count(*) FILTER (WHERE s.status = 'failed')::int AS failed,
            count(*) FILTER (WHERE s.status = 'pending')::int AS pending,
            coalesce(sum(s.records), 0)::int AS records,
            (SELECT count(*) FROM repo_sync l WHERE l.left_run = r.id)::int AS left
     FROM backfill_run r LEFT JOIN repo_sync s ON s.run_id = r.id
     WHERE r.status <> 'done' OR r.finished_at > now() - interval '1 hour'
     GROUP BY r.id ORDER BY r.id DESC LIMIT 5`,
  )
  const resync = await pool.query<{ pending: number; retrying: number; failed: number; desynchronized: number }>(
    `SELECT (SELECT count(*) FROM repo_sync WHERE run_id IS NULL AND status = 'pending')::int AS pending,
            (SELECT count(*) FROM repo_sync WHERE run_id IS NULL AND status = 'pending' AND attempts > 0)::int AS retrying,
            (SELECT count(*) FROM repo_sync WHERE run_id IS NULL AND status = 'failed')::int AS failed,
            (SELECT count(*) FROM repo_state WHERE status = 'desynchronized')::int AS desynchronized`,
  )
  const retries = await pool.query<{ did: string; reason: string; attempts: number; last_error: string | null; next_attempt_at: Date }>(
    `SELECT did, reason, attempts, last_error, next_attempt_at FROM repo_sync
     WHERE run_id IS NULL AND status = 'pending' AND attempts > 0 ORDER BY attempts DESC, did LIMIT 10`,
  )
  return {
    runs: runs.rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      reason: r.reason,
      status: r.status,
      createdAt: r.created_at.toISOString(),
      repos: { total: r.total + r.left, done: r.done, failed: r.failed, pending: r.pending, left: r.left },
      records: r.records,
      ...(r.discovery_error === null
        ? {}
        : {
            discovery: {
              error: r.discovery_error,
              failures: r.discovery_failures,
              failedAt: r.discovery_failed_at?.toISOString() ?? null,
              retryAt: r.discovery_retry_at?.toISOString() ?? null,
            },
          }),
    })),
    resync: {
      ...(resync.rows[0] ?? { pending: 0, retrying: 0, failed: 0, desynchronized: 0 }),
      retries: retries.rows.map((r) => ({
        did: r.did,
        reason: r.reason,
        attempts: r.attempts,
        lastError: r.last_error,
        nextAttemptAt: r.next_attempt_at.toISOString(),
      })),
    },
  }
}

/**
 * The newest rev of any record the index holds (or held) of this repo, tracked or not; null when
 * it holds none. A `#sync` past it must resync the repo.
 */
export const latestRecordRev = async (pool: Pool, did: string): Promise<string | null> => {
  const res = await pool.query<{ rev: string | null }>(
    `SELECT max(rev) AS rev FROM record_rev WHERE starts_with(uri, $1)
     HAVING bool_or(NOT deleted)`,
    [`at://${did}/`],
  )
  return res.rows[0]?.rev ?? null
}
