import type { Pool } from './pool.ts'
import { fencedQuery } from './fence.ts'

/** The last relay seq whose effects are committed, or null before the first commit. */
export const readCursor = async (pool: Pool, relayUrl: string): Promise<number | null> => {
  const res = await pool.query<{ seq: number }>('SELECT seq FROM relay_cursor WHERE relay_url = $1', [relayUrl])
  return res.rows[0]?.seq ?? null
}

export interface RelayState {
  cursor: number | null
  status: unknown
  updatedAt: Date | null
  /** When `status` was written. */
  statusAt: Date | null
}

/**
 * The cursor, and the ingester's latest status: the one committed with the cursor, or the one
 * written on its own (before any cursor exists), whichever is newer.
 */
export const readRelayState = async (pool: Pool, relayUrl: string): Promise<RelayState> => {
  const res = await pool.query<{ seq: number | null; status: unknown; updated_at: Date | null; status_at: Date | null }>(
    `SELECT c.seq, c.updated_at,
            CASE WHEN s.updated_at IS NOT NULL AND (c.updated_at IS NULL OR s.updated_at > c.updated_at)
                 THEN s.status ELSE c.status END AS status,
            greatest(s.updated_at, c.updated_at) AS status_at
     FROM (SELECT $1::text AS relay_url) r
     LEFT JOIN relay_cursor c USING (relay_url)
     LEFT JOIN ingest_status s USING (relay_url)`,
    [relayUrl],
  )
  const row = res.rows[0]
  return { cursor: row?.seq ?? null, status: row?.status ?? null, updatedAt: row?.updated_at ?? null, statusAt: row?.status_at ?? null }
}

/** The ingester's status without a cursor to go with it (none is committed yet); the leader's, so fenced. */
export const saveIngestStatus = (pool: Pool, relayUrl: string, status: unknown) =>
  fencedQuery(
    pool,
    `INSERT INTO ingest_status (relay_url, status) VALUES ($1, $2)
     ON CONFLICT (relay_url) DO UPDATE SET status = excluded.status, updated_at = now()`,
    [relayUrl, JSON.stringify(status)],
  )

/** Every relay a cursor was ever stored for. */
export const knownRelays = async (pool: Pool): Promise<string[]> => {
  const res = await pool.query<{ relay_url: string }>('SELECT relay_url FROM relay_cursor ORDER BY relay_url')
  return res.rows.map((r) => r.relay_url)
}
