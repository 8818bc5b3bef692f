/**
 * SQL of a repo's sync state: repo_state (its last signed position and its status) and the
 * repo_sync rows that resync it. Only src/pipeline/repo-state.ts decides the transitions; this
 * file only says them in SQL.
 */
import type { Pool, PoolClient } from './pool.ts'

type Db = Pool | PoolClient

export type RepoStatus = 'synced' | 'desynchronized'

export interface RepoState {
  /** The last signed commit applied (never an unchecked one). */
  rev: string
  /** Its MST root; null when no root is known to continue from (a resync that ended in a verdict). */
  dataCid: string | null
  status: RepoStatus
}

export interface RepoJob {
  did: string
  runId: number | null
  attempts: number
  /** The repo's request generation when it was leased (see finishResync). */
  generation: number
}

export const readRepoState = async (db: Db, did: string): Promise<RepoState | undefined> => {
  const res = await db.query<{ rev: string; data_cid: string | null; status: RepoStatus }>(
    'SELECT rev, data_cid, status FROM repo_state WHERE did = $1',
    [did],
  )
  const r = res.rows[0]
  return r && { rev: r.rev, dataCid: r.data_cid, status: r.status }
}

/** Tracked repos' DIDs in pages (keyset), for the ingester's membership filter. */
export const repoStateDidsAfter = async (pool: Pool, after: string, limit: number): Promise<string[]> => {
  const res = await pool.query<{ did: string }>('SELECT did FROM repo_state WHERE did > $1 ORDER BY did LIMIT $2', [after, limit])
  return res.rows.map((r) => r.did)
}

/**
 * A snapshot's position; `synced` also clears a desynchronized mark. The rev never moves
 * backwards: a snapshot older than what the stream has applied since leaves the stream's
 * (signed) position, whose chain continues from where it is.
 */
export const advanceRepoState = (db: Db, did: string, rev: string, dataCid: string | null, synced: boolean) =>
  db.query(
    `INSERT INTO repo_state (did, rev, data_cid) VALUES ($1, $2, $3)
     ON CONFLICT (did) DO UPDATE SET
       rev = CASE WHEN repo_state.rev < excluded.rev THEN excluded.rev ELSE repo_state.rev END,
       data_cid = CASE WHEN repo_state.rev < excluded.rev THEN excluded.data_cid ELSE repo_state.data_cid END,
       updated_at = now(),
       status = CASE WHEN $4 THEN 'synced' ELSE repo_state.status END,
       status_reason = CASE WHEN $4 THEN NULL ELSE repo_state.status_reason END
     WHERE repo_state.rev < excluded.rev OR $4`,
    [did, rev, dataCid, synced],
  )

/** Signed positions of many repos in one statement; a position never moves a repo's rev backwards. */
export const advanceRepoStates = async (db: Db, positions: readonly { did: string; rev: string; dataCid: string | null }[]): Promise<void> => {
  if (positions.length === 0) return
  await db.query(
    `INSERT INTO repo_state (did, rev, data_cid)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
     ON CONFLICT (did) DO UPDATE SET rev = excluded.rev, data_cid = excluded.data_cid, updated_at = now()
     WHERE repo_state.rev < excluded.rev`,
    [positions.map((p) => p.did), positions.map((p) => p.rev), positions.map((p) => p.dataCid)],
  )
}

/** Marks a repo out of sync with us and queues a resync of it. */
export const requestResync = async (db: Db, did: string, reason: string): Promise<void> => {
  await db.query(
    `UPDATE repo_state SET status = 'desynchronized', status_reason = $2, updated_at = now() WHERE did = $1`,
    [did, reason],
  )
  // A sync already queued or under way keeps its reason, lease, attempts and backoff, but its
  // generation moves on: if it is under way, its snapshot may be older than this request, so
  // finishing it leaves the repo pending (finishResync) and it is synced again.
  await db.query(
    `INSERT INTO repo_sync (did, reason) VALUES ($1, $2)
     ON CONFLICT (did) DO UPDATE SET generation = repo_sync.generation + 1,
       reason = CASE WHEN repo_sync.status = 'pending' THEN repo_sync.reason ELSE excluded.reason END,
       attempts = CASE WHEN repo_sync.status = 'pending' THEN repo_sync.attempts ELSE 0 END,
       next_attempt_at = CASE WHEN repo_sync.status = 'pending' THEN repo_sync.next_attempt_at ELSE now() END,
       last_error = CASE WHEN repo_sync.status = 'pending' THEN repo_sync.last_error END,
       status = 'pending', requested_at = now(), finished_at = NULL`,
    [did, `resync: ${reason}`],
  )
}

/**
 * Ends a repo's sync with a snapshot. Returns false when the repo was asked for again while the
 * sync ran (its generation moved): it stays pending, due at once, and is not declared synced.
 */
export const finishResync = async (db: Db, job: RepoJob, records: number, rev: string, dataCid: string): Promise<boolean> => {
  // repo_state first, as requestResync locks it: the two orders would deadlock.
  await db.query('SELECT 1 FROM repo_state WHERE did = $1 FOR UPDATE', [job.did])
  const res = await db.query<{ current: boolean }>(
    `UPDATE repo_sync SET records = $2, last_error = NULL,
            status = CASE WHEN generation = $3 THEN 'done' ELSE 'pending' END,
            finished_at = CASE WHEN generation = $3 THEN now() END,
            attempts = CASE WHEN generation = $3 THEN attempts ELSE 0 END,
            next_attempt_at = CASE WHEN generation = $3 THEN next_attempt_at ELSE now() END
     WHERE did = $1 RETURNING generation = $3 AS current`,
    [job.did, records, job.generation],
  )
  const current = res.rows[0]?.current ?? true
  await advanceRepoState(db, job.did, rev, dataCid, current)
  return current
}

/**
 * A sync that failed for a transient reason is tried again after `delayMs`, however many times
 * it takes. One that has used a run's `maxAttempts` leaves the run (which can then close) and
 * goes on as a resync of its own. Returns whether it left its run now.
 */
export const retryResync = async (db: Db, job: RepoJob, error: string, delayMs: number, maxAttempts: number): Promise<boolean> => {
  const leave = job.runId !== null && job.attempts + 1 >= maxAttempts
  await db.query(
    `UPDATE repo_sync SET attempts = attempts + 1, last_error = $2,
            next_attempt_at = now() + $3 * interval '1 millisecond',
            left_run = CASE WHEN $4 THEN run_id ELSE left_run END,
            run_id = CASE WHEN $4 THEN NULL ELSE run_id END
     WHERE did = $1 AND status = 'pending'`,
    [job.did, error, delayMs, leave],
  )
  return leave
}

/**
 * A sync that met a verdict (the host proves the repo gone, or serves what does not verify):
 * nothing is retried. The repo's chain is followed again from its next signed commit (no root
 * is known to continue from), so it is no longer desynchronized. Returns false when the repo was
 * asked for again meanwhile: it stays pending.
 */
export const endResync = async (db: Db, job: RepoJob, verdict: string): Promise<boolean> => {
  await db.query('SELECT 1 FROM repo_state WHERE did = $1 FOR UPDATE', [job.did])
  const res = await db.query<{ current: boolean }>(
    `UPDATE repo_sync SET last_error = $2,
            status = CASE WHEN generation = $3 THEN 'failed' ELSE 'pending' END,
            finished_at = CASE WHEN generation = $3 THEN now() END,
            next_attempt_at = CASE WHEN generation = $3 THEN next_attempt_at ELSE now() END
     WHERE did = $1 RETURNING generation = $3 AS current`,
    [job.did, `verdict: ${verdict}`, job.generation],
  )
  const current = res.rows[0]?.current ?? true
  if (current) {
    await db.query(
      `UPDATE repo_state SET status = 'synced', data_cid = NULL, status_reason = $2, updated_at = now() WHERE did = $1`,
      [job.did, `resync ended: ${verdict}`],
    )
  }
  return current
}
