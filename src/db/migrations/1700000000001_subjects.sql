-- Up Migration

-- Whether an invite's subject is proven: 'pending' until proven or disproven, then
-- 'verified', 'subject-missing', 'cid-mismatch', 'not-chive-record' or 'subject-deleted'.
-- Only verified invites are served to the public API.
ALTER TABLE invite
  ADD COLUMN verification text NOT NULL DEFAULT 'pending',
  ADD COLUMN verification_reason text,
  ADD COLUMN verified_at timestamptz;
CREATE INDEX invite_pending_by_inviter ON invite (inviter) WHERE verification = 'pending';

-- Chive records (pub.chive.*) seen on the verified stream or proven from their repo.
CREATE TABLE subject_record (
  uri text PRIMARY KEY,
  repo text NOT NULL,
  collection text NOT NULL,
  cid text,
  deleted boolean NOT NULL DEFAULT false,
  -- True when we saw the record's creation, so every version of it since is known.
  complete boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every CID a subject has had, as far as we saw or proved: an invite to an earlier version
-- stays genuine when the subject is edited.
CREATE TABLE subject_version (
  uri text NOT NULL,
  cid text NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (uri, cid)
);

-- Invites whose subject must be fetched from the inviter's PDS. Lives here so that retries
-- survive restarts; one row per invite version.
CREATE TABLE verify_queue (
  invite_uri text PRIMARY KEY,
  invite_cid text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX verify_queue_due ON verify_queue (next_attempt_at);

-- Down Migration
DROP TABLE verify_queue, subject_version, subject_record;
DROP INDEX invite_pending_by_inviter;
ALTER TABLE invite DROP COLUMN verification, DROP COLUMN verification_reason, DROP COLUMN verified_at;
