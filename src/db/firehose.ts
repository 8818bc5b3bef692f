import type { Pool } from './pool.ts'

export interface IngestPoint {
  minute: Date
  /** Relay events read in this minute (seqs advanced). */
  events: number
  /** At the minute's last status commit. */
  lagSeconds: number | null
}

/** Per-minute event rate and lag over the last `minutes`, oldest first. */
export const ingestHistory = async (pool: Pool, relayUrl: string, minutes = 60): Promise<IngestPoint[]> => {
  // The minute before ends where this one starts, when there is one; a restart's first
  // commit starts from the stored cursor, so seq_first covers the rest.
  const res = await pool.query<{ minute: Date; events: number; lag: number | null }>(
    `SELECT minute, events, lag FROM (
       SELECT minute,
              greatest(0, seq_last - CASE WHEN lag(minute) OVER w = minute - interval '1 minute'
                                          THEN lag(seq_last) OVER w ELSE seq_first END)::int AS events,
              -- The lag at the minute's last status commit: the current minute's point is then
              -- the lag the status reports (a minute's peak would stand beside a caught-up "0 s").
              lag_last AS lag
       FROM ingest_sample
       WHERE relay_url = $1 AND minute >= date_trunc('minute', now()) - ($2 + 1) * interval '1 minute'
       WINDOW w AS (ORDER BY minute)
     ) s WHERE minute >= date_trunc('minute', now()) - $2 * interval '1 minute'
     ORDER BY minute`,
    [relayUrl, minutes],
  )
  return res.rows.map((r) => ({ minute: r.minute, events: r.events, lagSeconds: r.lag }))
}

/** The lag at the ingester's last status commit, in seconds. */
export const currentLag = async (pool: Pool, relayUrl: string): Promise<number | null> => {
  const res = await pool.query<{ lag: number | null }>(
    'SELECT lag_last AS lag FROM ingest_sample WHERE relay_url = $1 ORDER BY minute DESC LIMIT 1',
    [relayUrl],
  )
  return res.rows[0]?.lag ?? null
}
