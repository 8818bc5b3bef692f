-- Up Migration

-- A change is pushed when, and only when, what listInvites serves of an invite changes. The
-- trigger no longer maps audit events to kinds: an audit row only says which invites may have
-- changed; the change is the difference between the view each one has now and the view last
-- pushed of it. So a third party's acceptance (which never counts), a record re-applied
-- unchanged (backfill, resync, replay) or a second event of one transaction push nothing, and
-- every way an invite stops being served (its row deleted with the inviter's account or by an
-- invalid version, its subject waiting for a proof again) pushes its removal.

-- The invite as listInvites serves it (src/db/queries.ts: SERVABLE, STATE, ACCEPTANCE_OF_INVITE,
-- and src/api/invites.ts inviteView for the role's default; keep them in step), or NULL when it
-- is not served. Times in UTC text, so that views computed in sessions of any TimeZone compare.
-- plpgsql, not sql: its plan is kept for the session, where a sql function called from the
-- trigger would be planned again at every call.
CREATE FUNCTION invite_served_view(target text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT jsonb_build_object(
    'uri', i.uri, 'inviter', i.inviter, 'invitee', i.invitee, 'subjectUri', i.subject_uri,
    'subjectCollection', i.subject_collection, 'role', coalesce(i.role, 'collaborator'), 'message', i.message,
    'state', CASE
      WHEN i.deleted_at IS NOT NULL THEN 'rejected'
      WHEN i.expires_at IS NOT NULL AND i.expires_at <= now() THEN 'expired'
      WHEN acc.uri IS NOT NULL THEN 'accepted'
      ELSE 'pending' END,
    'createdAt', to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'expiresAt', to_char(i.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'acceptanceUri', acc.uri,
    'acceptedAt', to_char(acc.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
  FROM invite i
  LEFT JOIN LATERAL (
    SELECT a.uri, a.created_at FROM acceptance a
    WHERE a.invite_uri = i.uri AND a.author = i.invitee AND a.subject_uri = i.subject_uri
      AND (a.invite_cid IS NULL
           OR EXISTS (SELECT 1 FROM invite_version v WHERE v.uri = i.uri AND v.cid = a.invite_cid))
      AND NOT EXISTS (SELECT 1 FROM account x WHERE x.did = a.author AND NOT x.active)
    ORDER BY a.created_at, a.uri
    LIMIT 1
  ) acc ON i.deleted_at IS NULL
  WHERE i.uri = target
    AND i.verification = 'verified'
    AND NOT EXISTS (SELECT 1 FROM account x WHERE x.did = i.inviter AND NOT x.active)
    AND NOT EXISTS (SELECT 1 FROM takedown t WHERE t.uri = i.uri)
    AND NOT EXISTS (SELECT 1 FROM blocked_inviter b WHERE b.did = i.inviter));
END $$;

-- What the feed last told of each invite: the view pushed (NULL after its removal) and the kind
-- of that change. The parties are kept apart so that an account's event finds the invites it
-- hid even when their rows are gone (a deleted account's).
CREATE TABLE invite_pushed (
  uri text PRIMARY KEY,
  inviter text NOT NULL,
  invitee text NOT NULL,
  view jsonb,
  kind text NOT NULL
);
CREATE INDEX invite_pushed_inviter ON invite_pushed (inviter);
CREATE INDEX invite_pushed_invitee ON invite_pushed (invitee);

-- A removal's view: the one last pushed, without its message (the invite's row may be gone, or
-- hold a version that is not served). NULL for every other change, whose view is the invite as
-- it stands when the change is read.
ALTER TABLE invite_change ADD COLUMN removed_view jsonb;

-- Everything served now counts as pushed, and what a moderator or an inactive account hides as
-- taken down: the first change after the upgrade is a change, not a second 'created'.
INSERT INTO invite_pushed (uri, inviter, invitee, view, kind)
SELECT i.uri, i.inviter, i.invitee, v.view, CASE WHEN v.view IS NULL THEN 'takenDown' ELSE 'created' END
FROM invite i, LATERAL (SELECT invite_served_view(i.uri) AS view) v
WHERE v.view IS NOT NULL OR (i.verification = 'verified' AND i.deleted_at IS NULL);

-- The kind of a change from `prev` (the view last pushed; NULL: never, or removed) to `cur` (now;
-- NULL: not served). A removal is named by what hides the invite now, an appearance by how it
-- left, so the kind does not depend on which event of a transaction came first.
CREATE FUNCTION invite_change_kind(target text, prev jsonb, prev_kind text, cur jsonb) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN CASE
    WHEN cur IS NULL THEN coalesce((
      SELECT CASE
        WHEN EXISTS (SELECT 1 FROM takedown t WHERE t.uri = i.uri)
          OR EXISTS (SELECT 1 FROM blocked_inviter b WHERE b.did = i.inviter)
          OR EXISTS (SELECT 1 FROM account x WHERE x.did = i.inviter AND NOT x.active AND x.status IS DISTINCT FROM 'deleted')
          THEN 'takenDown'
        WHEN i.verification = 'subject-deleted' THEN 'subjectDeleted'
      END
      FROM invite i WHERE i.uri = target), 'removed')
    WHEN prev IS NULL THEN CASE WHEN prev_kind = 'takenDown' THEN 'restored' ELSE 'created' END
    WHEN cur->>'state' = 'rejected' THEN 'deleted'
    WHEN prev->>'state' = 'rejected' THEN 'created'
    WHEN cur - 'state' - 'acceptanceUri' - 'acceptedAt' IS DISTINCT FROM prev - 'state' - 'acceptanceUri' - 'acceptedAt' THEN 'updated'
    WHEN cur->>'state' = 'expired' AND prev->>'state' <> 'expired' THEN 'expired'
    WHEN cur->>'acceptanceUri' IS NULL THEN 'acceptanceWithdrawn'
    ELSE 'accepted'
  END;
END $$;

-- Deferred to the commit, as before: the invites' state is final, and the feed lock is the last
-- lock the transaction takes. The views are read under that lock, so of two transactions that
-- change one invite, the second compares with what the first pushed.
CREATE OR REPLACE FUNCTION record_invite_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  targets text[];
  target text;
  cur jsonb;
  prev_found boolean;
  prev_view jsonb;
  prev_kind text;
  prev_now boolean;
  change_kind text;
  locked boolean := false;
BEGIN
  IF NEW.collection = 'pub.chive.collaboration.invite' THEN
    targets := ARRAY[NEW.subject];
  ELSIF NEW.collection = 'pub.chive.collaboration.inviteAcceptance' THEN
    -- An acceptance's delete or rejection names no invite: its history does.
    targets := ARRAY[coalesce(NEW.invite_uri, (SELECT e.invite_uri FROM audit_event e
                                               WHERE e.subject = NEW.subject AND e.invite_uri IS NOT NULL ORDER BY e.id DESC LIMIT 1))];
  ELSIF NEW.event IN ('block', 'unblock', 'account') THEN
    -- A block or an account's status: every invite the DID sent or received, held or pushed.
    targets := ARRAY(
      SELECT i.uri FROM invite i WHERE i.inviter = NEW.subject OR i.invitee = NEW.subject
      UNION
      SELECT p.uri FROM invite_pushed p WHERE p.inviter = NEW.subject OR p.invitee = NEW.subject
      ORDER BY 1);
  ELSE
    RETURN NULL;
  END IF;
  FOREACH target IN ARRAY targets
  LOOP
    CONTINUE WHEN target IS NULL;
    IF NOT locked THEN
      PERFORM pg_advisory_xact_lock(hashtext('invite_change:' || current_schema()));
      locked := true;
    END IF;
    SELECT view, kind, xmin = pg_current_xact_id()::xid INTO prev_view, prev_kind, prev_now FROM invite_pushed WHERE uri = target;
    prev_found := FOUND;
    -- Pushed at this commit already, for an earlier audit row of the transaction: the state
    -- compared then was final.
    CONTINUE WHEN prev_found AND prev_now;
    cur := invite_served_view(target);
    -- Never served and not served now: nobody heard of it, nobody needs to.
    CONTINUE WHEN NOT prev_found AND cur IS NULL;
    CONTINUE WHEN cur IS NOT DISTINCT FROM prev_view;
    change_kind := invite_change_kind(target, prev_view, prev_kind, cur);
    INSERT INTO invite_change (id, invite_uri, kind, audit_id, removed_view)
    VALUES (nextval('invite_change_id'), target, change_kind, NEW.id, CASE WHEN cur IS NULL THEN prev_view - 'message' END);
    INSERT INTO invite_pushed (uri, inviter, invitee, view, kind)
    VALUES (target, coalesce(cur, prev_view)->>'inviter', coalesce(cur, prev_view)->>'invitee', cur, change_kind)
    ON CONFLICT (uri) DO UPDATE SET inviter = excluded.inviter, invitee = excluded.invitee, view = excluded.view, kind = excluded.kind;
  END LOOP;
  -- One notification per transaction and schema (Postgres folds identical ones).
  IF locked THEN
    PERFORM pg_notify('chive_invite_change', current_schema());
  END IF;
  RETURN NULL;
END $$;

-- Down Migration
-- The trigger of 1700000000040, as it was.
CREATE OR REPLACE FUNCTION record_invite_change() RETURNS trigger LANGUAGE plpgsql AS $$
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
    IF change_kind = 'write' THEN
      SELECT * INTO last_write FROM audit_event
        WHERE subject = target AND event IN ('create', 'update') AND id < NEW.id ORDER BY id DESC LIMIT 1;
      change_kind := CASE
        WHEN last_write.event = 'create' AND NOT EXISTS (
          SELECT 1 FROM invite_change c WHERE c.invite_uri = target AND c.kind = 'created' AND c.audit_id > last_write.id)
        THEN 'created' ELSE 'updated' END;
    END IF;
  END IF;
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
  PERFORM pg_notify('chive_invite_change', current_schema());
  RETURN NULL;
END $$;
DROP FUNCTION invite_change_kind(text, jsonb, text, jsonb);
ALTER TABLE invite_change DROP COLUMN removed_view;
DROP TABLE invite_pushed;
DROP FUNCTION invite_served_view(text);
