-- Up Migration

-- The ingester's status before any cursor is stored (connecting, the last disconnect, the next
-- retry), so that every replica's health endpoint can tell an unreachable relay from a quiet
-- one. Once a cursor is committed the status rides with it in relay_cursor; the newer one wins.
CREATE TABLE ingest_status (
  relay_url text PRIMARY KEY,
  status jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Why a backfill run's discovery is not moving: the last failure (URL and cause), how many in a
-- row, and when it is tried again.
ALTER TABLE backfill_run
  ADD COLUMN discovery_error text,
  ADD COLUMN discovery_failures integer NOT NULL DEFAULT 0,
  ADD COLUMN discovery_failed_at timestamptz,
  ADD COLUMN discovery_retry_at timestamptz;

-- Down Migration
ALTER TABLE backfill_run DROP COLUMN discovery_retry_at, DROP COLUMN discovery_failed_at, DROP COLUMN discovery_failures, DROP COLUMN discovery_error;
DROP TABLE ingest_status;
