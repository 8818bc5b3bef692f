import type { Pool } from './pool.ts'
import { INVITE_NSID } from './effects.ts'
import { inTransaction } from './transaction.ts'
import type { PoolClient } from './pool.ts'

/** Records in the audit trail, once, each invite whose expiresAt has passed (again if it changes). */
const insertExpiries = async (client: PoolClient): Promise<number> => {
  const res = await client.query(
    `INSERT INTO audit_event (subject, collection, repo, event, reason, record)
     SELECT i.uri, $1, i.inviter, 'expiry', 'expired', jsonb_build_object('expiresAt', i.expires_at)
     FROM invite i
     WHERE i.expires_at <= now() AND i.deleted_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM audit_event e WHERE e.subject = i.uri AND e.event = 'expiry'
                         AND (e.record->>'expiresAt')::timestamptz = i.expires_at)`,
    [INVITE_NSID],
  )
  return res.rowCount ?? 0
}

/**
 * Each upkeep job under its own advisory lock per schema, waited for, never tried: one replica at
 * a time runs a job, and a job that finds another (or the same replica's other timer) at it runs
 * after it instead of being skipped. The expiry recording and the purge take different locks, so
 * a long purge never delays the expiries, which are pushed.
 */
const waitForJob = async (client: PoolClient, job: 'expiry' | 'purge'): Promise<void> => {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('upkeep:' || $1 || ':' || current_schema()))`, [job])
}

/** Just the expiries, often (each one is a push); one replica at a time records them, so never twice. */
export const recordExpiries = (pool: Pool): Promise<number> =>
  inTransaction(pool, async (client) => {
    await waitForJob(client, 'expiry')
    return insertExpiries(client)
  })

export interface UpkeepResult {
  expired: number
  tombstones: number
  rejections: number
  samples: number
  changes: number
}

/**
 * Records each invite's expiry in the audit trail once (again only if its expiresAt changes),
 * and purges what is older than `retentionDays`: invite tombstones with the rev tombstones of
 * deleted records (a relay keeps days of history, not weeks, so none of their events can come
 * back), rejection-log entries, and chart samples older than a day. The audit trail stays.
 */
export const runUpkeep = async (pool: Pool, retentionDays: number): Promise<UpkeepResult> => {
  const expired = await recordExpiries(pool)
  return { expired, ...(await purge(pool, retentionDays)) }
}

const purge = (pool: Pool, retentionDays: number): Promise<Omit<UpkeepResult, 'expired'>> =>
  inTransaction(pool, async (client) => {
    await waitForJob(client, 'purge')
    const cutoff = `now() - $1 * interval '1 day'`
    const tombstones = await client.query<{ n: number }>(
      `WITH gone AS (DELETE FROM invite WHERE deleted_at < ${cutoff} RETURNING uri),
            versions AS (DELETE FROM invite_version v USING gone WHERE v.uri = gone.uri),
            pushed AS (DELETE FROM invite_pushed p USING gone WHERE p.uri = gone.uri)
       SELECT count(*)::int AS n FROM gone`,
      [retentionDays],
    )
    await client.query(`DELETE FROM record_rev WHERE deleted AND updated_at < ${cutoff}`, [retentionDays])
    const rejections = await client.query(`DELETE FROM rejection WHERE rejected_at < ${cutoff}`, [retentionDays])
    const samples = await client.query(`DELETE FROM ingest_sample WHERE minute < now() - interval '1 day'`)
    // The change feed is kept as long as the rest, and until every webhook endpoint has it: a
    // cursor below what was purged is told OutdatedCursor.
    const changes = await client.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM invite_change WHERE at < ${cutoff}
           AND id <= coalesce((SELECT min(position) FROM webhook_endpoint), 9223372036854775807)
         RETURNING id
       ), moved AS (
         UPDATE change_feed SET purged_through = greatest(purged_through, (SELECT max(id) FROM gone))
         WHERE EXISTS (SELECT 1 FROM gone)
       )
       SELECT count(*)::int AS n FROM gone`,
      [retentionDays],
    )
    return {
      tombstones: tombstones.rows[0]?.n ?? 0,
      rejections: rejections.rowCount ?? 0,
      samples: samples.rowCount ?? 0,
      changes: changes.rows[0]?.n ?? 0,
    }
  })
