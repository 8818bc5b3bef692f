-- Up Migration

-- The change feed of invites, for push (subscriptions and webhooks): one row per change a
-- party of the invite should hear of, derived from the audit trail. `id` is the feed's seq.
-- Rows commit in id order (see record_invite_change), so a reader that has seen id n has
-- seen every change up to n that will ever commit: "after my cursor" loses nothing.
CREATE SEQUENCE invite_change_id;
CREATE TABLE invite_change (
  id bigint PRIMARY KEY,
  invite_uri text NOT NULL,
  -- created, updated, accepted, acceptanceWithdrawn, expired, deleted, subjectDeleted,
  -- takenDown, restored (an invite's takedown, or its inviter's block or account status)
  kind text NOT NULL,
  audit_id bigint NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invite_change_invite ON invite_change (invite_uri, id);
CREATE INDEX invite_change_at ON invite_change (at);

-- One row: this feed's identity (idempotency keys stay unique across a rebuilt database) and
-- the highest id the retention purged (a cursor below it has missed changes: OutdatedCursor).
CREATE TABLE change_feed (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  feed_id uuid NOT NULL DEFAULT gen_random_uuid(),
  purged_through bigint NOT NULL DEFAULT 0
);
INSERT INTO change_feed DEFAULT VALUES;

-- Deferred to the commit of the transaction that wrote the audit row: the invite's state is then
-- final (an invite's create is audited before its row is stored), and the feed lock is the last
-- lock the transaction takes, so it cannot deadlock with the row locks of other writers (ingest,
-- the subject verifier, moderators, the upkeep). Ids are drawn under that lock, so they commit
-- in the order they were drawn.
CREATE FUNCTION record_invite_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  change_kind text;
  target text := NEW.subject;
  last_write audit_event%ROWTYPE;
BEGIN
  IF NEW.collection = 'pub.chive.collaboration.inviteAcceptance' THEN
    target := NEW.invite_uri;
    change_kind := CASE NEW.event WHEN 'create' THEN 'accepted' WHEN 'update' THEN 'accepted'
                                  WHEN 'delete' THEN 'acceptanceWithdrawn' END;
  ELSIF NEW.collection = 'pub.chive.collaboration.invite' THEN
    change_kind := CASE NEW.event
      WHEN 'delete' THEN 'deleted'
      WHEN 'expiry' THEN 'expired'
      WHEN 'takedown' THEN 'takenDown'
      WHEN 'restore' THEN 'restored'
      WHEN 'verification' THEN CASE NEW.reason WHEN 'subject-deleted' THEN 'subjectDeleted' WHEN 'verified' THEN 'write' END
    END;
    -- An invite reaches its parties when its subject is proven, not when it is written (an
    -- unproven invite is never served): the proof says which write it was.
    IF change_kind = 'write' THEN
      SELECT * INTO last_write FROM audit_event
        WHERE subject = target AND event IN ('create', 'update') AND id < NEW.id ORDER BY id DESC LIMIT 1;
      change_kind := CASE
        WHEN last_write.event = 'create' AND NOT EXISTS (
          SELECT 1 FROM invite_change c WHERE c.invite_uri = target AND c.kind = 'created' AND c.audit_id > last_write.id)
        THEN 'created' ELSE 'updated' END;
    END IF;
  END IF;
  -- A block, or an account that stops being active (taken down or deactivated on its PDS), hides
  -- every invite of the inviter (subject: the DID); an unblock or reactivation shows them again.
  IF NEW.event IN ('block', 'unblock', 'account') THEN
    PERFORM pg_advisory_xact_lock(hashtext('invite_change:' || current_schema()));
    INSERT INTO invite_change (id, invite_uri, kind, audit_id)
      SELECT nextval('invite_change_id'), i.uri,
             CASE WHEN NEW.event = 'block' OR (NEW.event = 'account' AND NEW.reason IS DISTINCT FROM 'active')
                  THEN 'takenDown' ELSE 'restored' END,
             NEW.id
      FROM (SELECT uri FROM invite WHERE inviter = NEW.subject AND deleted_at IS NULL ORDER BY uri) i;
    PERFORM pg_notify('chive_invite_change', current_schema());
    RETURN NULL;
  END IF;
  IF change_kind IS NULL OR target IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('invite_change:' || current_schema()));
  INSERT INTO invite_change (id, invite_uri, kind, audit_id) VALUES (nextval('invite_change_id'), target, change_kind, NEW.id);
  -- One notification per transaction and schema (Postgres folds identical ones).
  PERFORM pg_notify('chive_invite_change', current_schema());
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER audit_event_change AFTER INSERT ON audit_event
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION record_invite_change();

-- Webhook endpoints (configured by the operator) and where each stands in the feed: the
-- outbox is the feed itself, each endpoint's position a row, moved only after a 2xx.
CREATE TABLE webhook_endpoint (
  url text PRIMARY KEY,
  -- Last change id delivered (or skipped as not deliverable).
  position bigint NOT NULL,
  -- Failed attempts at the change after `position`, in a row.
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  last_failure_at timestamptz,
  failing_since timestamptz,
  delivered bigint NOT NULL DEFAULT 0,
  failures bigint NOT NULL DEFAULT 0,
  last_delivered_at timestamptz,
  -- One replica delivers to an endpoint at a time.
  leased_by text,
  lease_until timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE webhook_endpoint;
DROP TRIGGER audit_event_change ON audit_event;
DROP FUNCTION record_invite_change();
DROP TABLE change_feed, invite_change;
DROP SEQUENCE invite_change_id;
