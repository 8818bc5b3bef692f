-- Up Migration

-- What happened to each invite and acceptance, in the order it happened: writes, deletes,
-- rejections, verification outcomes, expiry, and moderator actions. Rows are only appended;
-- the one later change is removing an author's message when the author deletes the record.
-- Account and block events concern a DID: `subject` is then the DID.
CREATE TABLE audit_event (
  id bigserial PRIMARY KEY,
  -- The record's URI, or a DID for account and block events.
  subject text NOT NULL,
  -- For an acceptance: the invite it names, so that the invite's history shows it.
  invite_uri text,
  collection text,
  -- The DID whose repo holds the record (the inviter for an invite).
  repo text,
  event text NOT NULL,
  -- A code (rejection reason, verification state, account status) or a moderator's reason.
  reason text,
  detail text,
  -- Author-written text at this version; purged when the author deletes the record.
  message text,
  -- Other fields of the version (subject, invitee, role, dates), without the message.
  record jsonb,
  seq bigint,
  rev text,
  cid text,
  -- Moderator actions: who, and how they signed in ('password' or 'service-auth').
  actor text,
  actor_kind text,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_event_subject ON audit_event (subject, id);
CREATE INDEX audit_event_invite ON audit_event (invite_uri, id) WHERE invite_uri IS NOT NULL;
-- Per-inviter volume: invite creations by repo and time.
CREATE INDEX audit_event_created ON audit_event (repo, at) WHERE event = 'create';
CREATE INDEX audit_event_at ON audit_event (at);

-- Invites a moderator has hidden from the public queries. Keyed by URI so that the takedown
-- outlives the invite row (a rejected version, a delete and recreate).
CREATE TABLE takedown (
  uri text PRIMARY KEY,
  reason text NOT NULL,
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);

-- Inviters whose invites, present and future, are hidden from the public queries.
CREATE TABLE blocked_inviter (
  did text PRIMARY KEY,
  reason text NOT NULL,
  actor text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);

-- One row per relay and minute, derived from the ingester's status commits (at least every
-- few seconds): the seq reached and the lag behind the relay, for the event-rate and lag chart.
CREATE TABLE ingest_sample (
  relay_url text NOT NULL,
  minute timestamptz NOT NULL,
  -- The seq at the minute's first and last status commit.
  seq_first bigint NOT NULL,
  seq_last bigint NOT NULL,
  lag_last double precision,
  lag_max double precision,
  PRIMARY KEY (relay_url, minute)
);

-- A trigger rather than a call in the ingester: every status commit of every ingester version
-- feeds the chart, and the ingest code stays as it is.
CREATE FUNCTION record_ingest_sample() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  lag double precision;
BEGIN
  -- With the seq unchanged there was nothing new to read, so nothing to lag behind; a stalled
  -- connection shows as disconnected instead.
  IF TG_OP = 'UPDATE' AND NEW.seq = OLD.seq THEN
    lag := 0;
  ELSE
    -- The time comes from the relay: a value that is no timestamp must not fail the commit.
    BEGIN
      lag := greatest(0, extract(epoch FROM now() - (NEW.status->>'lastEventTime')::timestamptz));
    EXCEPTION WHEN others THEN
      lag := NULL;
    END;
  END IF;
  INSERT INTO ingest_sample (relay_url, minute, seq_first, seq_last, lag_last, lag_max)
  VALUES (NEW.relay_url, date_trunc('minute', now()), CASE WHEN TG_OP = 'UPDATE' THEN OLD.seq ELSE NEW.seq END, NEW.seq, lag, lag)
  ON CONFLICT (relay_url, minute) DO UPDATE SET
    seq_last = greatest(ingest_sample.seq_last, excluded.seq_last),
    lag_last = excluded.lag_last,
    lag_max = greatest(ingest_sample.lag_max, excluded.lag_max);
  RETURN NULL;
END $$;

CREATE TRIGGER relay_cursor_sample AFTER INSERT OR UPDATE ON relay_cursor
  FOR EACH ROW EXECUTE FUNCTION record_ingest_sample();

-- Down Migration
DROP TRIGGER relay_cursor_sample ON relay_cursor;
DROP FUNCTION record_ingest_sample();
DROP TABLE ingest_sample, blocked_inviter, takedown, audit_event;
