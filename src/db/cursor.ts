import type { Pool } from './pool.ts'

/** The last relay seq whose effects are committed, or null before the first commit. */
export const readCursor = async (pool: Pool, relayUrl: string): Promise<number | null> => {
  const res = await pool.query<{ seq: number }>('SELECT seq FROM relay_cursor WHERE relay_url = $1', [relayUrl])
  return res.rows[0]?.seq ?? null
}

export interface RelayState {
  cursor: number | null
  status: unknown
  updatedAt: Date | null
}

export const readRelayState = async (pool: Pool, relayUrl: string): Promise<RelayState> => {
  const res = await pool.query<{ seq: number; status: unknown; updated_at: Date }>(
    'SELECT seq, status, updated_at FROM relay_cursor WHERE relay_url = $1',
    [relayUrl],
  )
  const row = res.rows[0]
  return { cursor: row?.seq ?? null, status: row?.status ?? null, updatedAt: row?.updated_at ?? null }
}

/** Every relay a cursor was ever stored for. */
export const knownRelays = async (pool: Pool): Promise<string[]> => {
  const res = await pool.query<{ relay_url: string }>('SELECT relay_url FROM relay_cursor ORDER BY relay_url')
  return res.rows.map((r) => r.relay_url)
}
