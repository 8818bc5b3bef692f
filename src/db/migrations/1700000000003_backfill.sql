-- Up Migration

-- Where each tracked repo (one that has held an invite or acceptance) stands: the last rev
-- and MST root we applied, for sync 1.1 chain checks on the stream.
CREATE TABLE repo_state (
  did text PRIMARY KEY,
  rev text COLLATE "C" NOT NULL,
  data_cid text,
  -- 'synced', or 'desynchronized' until a resync proves the repo's state again.
  status text NOT NULL DEFAULT 'synced',
  status_reason text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A full or partial backfill: discovery progress is kept so that it resumes after a crash.
CREATE TABLE backfill_run (
  id bigserial PRIMARY KEY,
  kind text NOT NULL,
  reason text NOT NULL,
  status text NOT NULL DEFAULT 'discovering',
  discovery jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- A gap found while this run was under way: repos it synced earlier may miss it, so another
  -- full run follows this one.
  followup_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  discovered_at timestamptz,
  finished_at timestamptz
);
-- At most one full backfill at a time: gaps found while one runs are covered by it.
CREATE UNIQUE INDEX backfill_run_one_full ON backfill_run ((true)) WHERE status <> 'done' AND kind = 'full';

-- Repos to sync from their PDS, by backfill or resync; a done row is not redone in its run.
CREATE TABLE repo_sync (
  did text PRIMARY KEY,
  run_id bigint REFERENCES backfill_run (id) ON DELETE SET NULL,
  reason text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  records integer,
  requested_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
CREATE INDEX repo_sync_due ON repo_sync (next_attempt_at) WHERE status = 'pending';
CREATE INDEX repo_sync_run ON repo_sync (run_id, status);

-- Down Migration
DROP TABLE repo_sync, backfill_run, repo_state;
