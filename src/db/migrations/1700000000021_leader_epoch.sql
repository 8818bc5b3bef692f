-- Up Migration

-- The ingest leadership's fencing token: moved on by every replica that takes the leader lock,
-- before it ingests. The ingest transaction reads it (FOR SHARE, so a new leader's increment
-- waits for batches in flight) and refuses to commit under any epoch but its own: a leader that
-- was deposed without knowing it (its lock connection silently gone) cannot land a batch.
CREATE TABLE leader_epoch (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  epoch bigint NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE leader_epoch;
