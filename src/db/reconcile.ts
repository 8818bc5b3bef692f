import type { Pool } from './pool.ts'
import { fencedQuery } from './fence.ts'

/** Tracked repos whose records were compared with their host's longest ago (never first). */
export const dueForReconcile = async (pool: Pool, limit: number): Promise<string[]> => {
  const res = await pool.query<{ did: string }>('SELECT did FROM repo_state ORDER BY reconciled_at NULLS FIRST, did LIMIT $1', [limit])
  return res.rows.map((r) => r.did)
}

export const countTrackedRepos = async (pool: Pool): Promise<number> => {
  const res = await pool.query<{ n: string }>('SELECT count(*) AS n FROM repo_state')
  return Number(res.rows[0]?.n ?? 0)
}

/** Fenced (src/db/fence.ts): the reconciler runs on the ingest leader only. */
export const markReconciled = async (pool: Pool, did: string): Promise<void> => {
  await fencedQuery(pool, 'UPDATE repo_state SET reconciled_at = now() WHERE did = $1', [did])
}

/** The repo's records the index holds as live, by URI, with their CIDs. */
export const liveRecordsOf = async (pool: Pool, did: string): Promise<Map<string, string>> => {
  const res = await pool.query<{ uri: string; cid: string }>(
    `SELECT uri, cid FROM invite WHERE inviter = $1 AND deleted_at IS NULL
     UNION ALL SELECT uri, cid FROM acceptance WHERE author = $1
     UNION ALL SELECT uri, cid FROM subject_record WHERE repo = $1 AND NOT deleted AND cid IS NOT NULL`,
    [did],
  )
  return new Map(res.rows.map((r) => [r.uri, r.cid]))
}
