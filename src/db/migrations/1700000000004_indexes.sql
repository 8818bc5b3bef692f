-- Up Migration

-- One event rejecting one version of a record for one reason is one fact, however often replayed.
-- Replays stored before this index are folded into their first row.
DELETE FROM rejection r USING rejection o
WHERE r.id > o.id
  AND r.uri IS NOT DISTINCT FROM o.uri AND r.cid IS NOT DISTINCT FROM o.cid
  AND r.rev IS NOT DISTINCT FROM o.rev AND r.reason = o.reason AND r.seq IS NOT DISTINCT FROM o.seq;
CREATE UNIQUE INDEX rejection_fact ON rejection (uri, cid, rev, reason, seq) NULLS NOT DISTINCT;

-- A repo's Chive records, for the backfill's reconciliation of each repo.
CREATE INDEX subject_record_repo ON subject_record (repo) WHERE NOT deleted;

-- An account's remaining words in the audit trail, purged when the account is deleted.
CREATE INDEX audit_event_message_repo ON audit_event (repo) WHERE message IS NOT NULL;

-- Down Migration
DROP INDEX audit_event_message_repo, subject_record_repo, rejection_fact;
