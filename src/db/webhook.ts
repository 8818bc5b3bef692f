import { createHash } from 'node:crypto'
import type { Pool } from './pool.ts'
import { fencedQuery } from './fence.ts'

/*
 * Delivery state is written by the ingest leader only (src/push/webhook.ts): every write but the
 * release of its own lease is fenced (src/db/fence.ts), so a deposed leader that has not noticed
 * yet cannot take the endpoints over from its successor, nor move a position.
 */

/**
 * How an endpoint is shown and logged: Slack- and Discord-style URLs carry their secret in the
 * path or query (and basic-auth ones in the userinfo), and `_health` and `/metrics` are
 * unauthenticated. The origin says where deliveries go, a short hash of the whole URL which
 * endpoint it is (the operator can compute it from the configuration: the first 8 hex digits
 * of its SHA-256). 32 bits of a hash say nothing useful about a secret of any strength.
 */
export const endpointLabel = (url: string): string => {
  const hash = createHash('sha256').update(url).digest('hex').slice(0, 8)
  let origin = 'invalid-url'
  try {
    origin = new URL(url).origin
  } catch {
    // Configured URLs are checked at start; a row written by an older version may not be one.
  }
  return `${origin}/…#${hash}`
}

export interface EndpointLease {
  position: number
  attempts: number
  nextAttemptAt: Date
}

export interface EndpointStatus {
  /** The endpoint's display form (endpointLabel), never its URL. */
  endpoint: string
  position: number
  /** Feed entries after its position (some may be for nobody and will be skipped). */
  pending: number
  consecutiveFailures: number
  delivered: number
  failures: number
  lastError: string | null
  lastFailureAt: Date | null
  failingSince: Date | null
  nextAttemptAt: Date
  lastDeliveredAt: Date | null
}

/**
 * Endpoints no longer configured are forgotten (their URLs returned): a removed URL's position
 * would otherwise hold the feed's purge back for ever. Configured again later, it starts afresh.
 */
export const forgetEndpoints = async (pool: Pool, keep: string[]): Promise<string[]> => {
  const res = await fencedQuery<{ url: string }>(pool, 'DELETE FROM webhook_endpoint WHERE url <> ALL($1::text[]) RETURNING url', [keep])
  return res.rows.map((r) => r.url)
}

/** New endpoints start at the feed's head: they are sent what changes from now on. */
export const registerEndpoints = async (pool: Pool, urls: string[]): Promise<void> => {
  if (urls.length === 0) return
  await fencedQuery(
    pool,
    `INSERT INTO webhook_endpoint (url, position)
     SELECT u, coalesce((SELECT max(id) FROM invite_change), (SELECT purged_through FROM change_feed), 0)
     FROM unnest($1::text[]) u
     ON CONFLICT (url) DO NOTHING`,
    [urls],
  )
}

/** The endpoint for `owner` for `ms`, unless another replica holds it; null then. */
export const leaseEndpoint = async (pool: Pool, url: string, owner: string, ms: number): Promise<EndpointLease | null> => {
  const res = await fencedQuery<{ position: number; attempts: number; next_attempt_at: Date }>(
    pool,
    `UPDATE webhook_endpoint SET leased_by = $2, lease_until = now() + $3 * interval '1 millisecond'
     WHERE url = $1 AND (lease_until IS NULL OR lease_until < now() OR leased_by = $2)
     RETURNING position, attempts, next_attempt_at`,
    [url, owner, ms],
  )
  const row = res.rows[0]
  return row ? { position: row.position, attempts: row.attempts, nextAttemptAt: row.next_attempt_at } : null
}

/** A new ingest leader's: the endpoints are its own at once, whoever held them. */
export const takeOverEndpoints = (pool: Pool, urls: string[], owner: string, ms: number) =>
  fencedQuery(
    pool,
    `UPDATE webhook_endpoint SET leased_by = $2, lease_until = now() + $3 * interval '1 millisecond' WHERE url = ANY($1::text[])`,
    [urls, owner, ms],
  )

/** Not fenced: it gives up only this replica's own lease, which a deposed leader must still do. */
export const releaseEndpoint = (pool: Pool, url: string, owner: string) =>
  pool.query('UPDATE webhook_endpoint SET lease_until = NULL WHERE url = $1 AND leased_by = $2', [url, owner])

/**
 * The receiver answered 2xx for change `id` (or it was for nobody: `delivered` false). Moves
 * only under the caller's lease and only forwards; false when the lease was lost.
 */
export const recordDelivered = async (pool: Pool, url: string, owner: string, id: number, delivered: boolean): Promise<boolean> => {
  const res = await fencedQuery(
    pool,
    `UPDATE webhook_endpoint SET position = $3, attempts = 0, next_attempt_at = now(), failing_since = NULL,
       delivered = delivered + $4::int, last_delivered_at = CASE WHEN $4::int = 1 THEN now() ELSE last_delivered_at END
     WHERE url = $1 AND leased_by = $2 AND lease_until > now() AND position < $3`,
    [url, owner, id, delivered ? 1 : 0],
  )
  return (res.rowCount ?? 0) > 0
}

export const recordFailure = (pool: Pool, url: string, owner: string, error: string, delayMs: number) =>
  fencedQuery(
    pool,
    `UPDATE webhook_endpoint SET attempts = attempts + 1, failures = failures + 1, last_error = $3,
       last_failure_at = now(), failing_since = coalesce(failing_since, now()),
       next_attempt_at = now() + $4 * interval '1 millisecond'
     WHERE url = $1 AND leased_by = $2`,
    [url, owner, error.slice(0, 500), delayMs],
  )

export const endpointStatus = async (pool: Pool, urls: string[]): Promise<EndpointStatus[]> => {
  if (urls.length === 0) return []
  const res = await pool.query<{
    url: string; position: number; pending: number; attempts: number; delivered: number; failures: number
    last_error: string | null; last_failure_at: Date | null; failing_since: Date | null; next_attempt_at: Date; last_delivered_at: Date | null
  }>(
    `SELECT e.*, (SELECT count(*)::int FROM invite_change c WHERE c.id > e.position) AS pending
     FROM webhook_endpoint e WHERE e.url = ANY($1::text[]) ORDER BY e.url`,
    [urls],
  )
  return res.rows.map((r) => ({
    endpoint: endpointLabel(r.url),
    position: r.position,
    pending: r.pending,
    consecutiveFailures: r.attempts,
    delivered: r.delivered,
    failures: r.failures,
    lastError: r.last_error,
    lastFailureAt: r.last_failure_at,
    failingSince: r.failing_since,
    nextAttemptAt: r.next_attempt_at,
    lastDeliveredAt: r.last_delivered_at,
  }))
}
