-- Up Migration

-- Jetstream mode: when each tracked repo's records were last compared with what its host lists
-- (an instance can withhold an event entirely; the comparison finds what it kept back).
ALTER TABLE repo_state ADD COLUMN reconciled_at timestamptz;
CREATE INDEX repo_state_reconcile ON repo_state (reconciled_at NULLS FIRST, did);
