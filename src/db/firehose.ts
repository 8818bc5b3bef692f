import type { Pool } from './pool.ts'

export interface IngestPoint {
  minute: Date
  /** Relay events read in this minute (seqs advanced); null without the minute before. */
  events: number | null
  lagSeconds: number | null
}

/** Per-minute event rate and lag over the last `minutes`, oldest first. */
export const ingestHistory = async (pool: Pool, relayUrl: string, minutes = 60): Promise<IngestPoint[]> => {
  const res = await pool.query<{ minute: Date; events: number | null; lag: number | null }>(
    `SELECT minute, events, lag FROM (
       SELECT minute,
              CASE WHEN lag(minute) OVER w = minute - interval '1 minute'
                   THEN greatest(0, seq_last - lag(seq_last) OVER w) END AS events,
              lag_max AS lag
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
