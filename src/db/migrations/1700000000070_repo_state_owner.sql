-- Up Migration

-- A repo's sync status has two values: 'synced' (the stream's commits are checked against the
-- signed root held) or 'desynchronized' (a resync is owed; until it lands the root held is not
-- the repo's, so commits are not inverted). rev/data_cid are only ever a signed commit's.
UPDATE repo_state SET status = 'desynchronized' WHERE status NOT IN ('synced', 'desynchronized');
ALTER TABLE repo_state ADD CONSTRAINT repo_state_status CHECK (status IN ('synced', 'desynchronized'));

-- A full run must be able to close while one host is down for days: a repo still failing after
-- BACKFILL_MAX_ATTEMPTS leaves its run (run_id NULL) and goes on as a resync, retried with a
-- capped backoff until it succeeds or meets a verdict. left_run keeps the run it left, for the
-- run's report.
ALTER TABLE repo_sync ADD COLUMN left_run bigint REFERENCES backfill_run (id) ON DELETE SET NULL;
CREATE INDEX repo_sync_left_run ON repo_sync (left_run) WHERE left_run IS NOT NULL;
-- Every sync given up so far was given up on a transient failure (verdicts did not exist): it
-- is retried, as a resync of its own.
UPDATE repo_sync SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL, left_run = run_id, run_id = NULL
WHERE status = 'failed';

-- Down Migration
ALTER TABLE repo_sync DROP COLUMN left_run;
ALTER TABLE repo_state DROP CONSTRAINT repo_state_status;
