-- Up Migration

-- Last relay seq whose effects are committed, one row per relay: seqs belong to one relay host.
CREATE TABLE relay_cursor (
  relay_url text PRIMARY KEY,
  seq bigint NOT NULL,
  -- The ingester's view of the stream (connection, errors, counts), for the health endpoint
  -- of every replica.
  status jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Ordering guard and tombstone for every record of our collections, valid or not:
-- an op applies only if its repo rev is newer than the last one applied to that URI,
-- so replays and late creates can never resurrect a deleted record.
CREATE TABLE record_rev (
  uri text PRIMARY KEY,
  rev text COLLATE "C" NOT NULL,
  deleted boolean NOT NULL,
  seq bigint,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE invite (
  uri text PRIMARY KEY,
  inviter text NOT NULL,
  cid text NOT NULL,
  rev text COLLATE "C" NOT NULL,
  subject_uri text NOT NULL,
  subject_cid text NOT NULL,
  subject_collection text NOT NULL,
  invitee text NOT NULL,
  role text,
  message text,
  created_at timestamptz NOT NULL,
  expires_at timestamptz,
  -- Page order: the record's createdAt, but never later than when we first saw it,
  -- so a createdAt far in the future cannot pin an invite to the top.
  sort_at timestamptz NOT NULL,
  indexed_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Set when the inviter deletes the invite (Chive reports it as "rejected").
  deleted_at timestamptz,
  seq bigint
);
CREATE INDEX invite_invitee_page ON invite (invitee, sort_at DESC, uri DESC);
CREATE INDEX invite_inviter_page ON invite (inviter, sort_at DESC, uri DESC);
CREATE INDEX invite_subject_page ON invite (subject_uri, sort_at DESC, uri DESC);
CREATE INDEX invite_expires_at ON invite (expires_at) WHERE expires_at IS NOT NULL;

-- Every CID an invite has had, so an acceptance of an earlier version still matches.
CREATE TABLE invite_version (
  uri text NOT NULL,
  cid text NOT NULL,
  seen_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (uri, cid)
);

CREATE TABLE acceptance (
  uri text PRIMARY KEY,
  author text NOT NULL,
  cid text NOT NULL,
  rev text COLLATE "C" NOT NULL,
  invite_uri text NOT NULL,
  -- NULL when the record carried an empty CID (Chive's frontend): matched on URI alone.
  invite_cid text,
  subject_uri text NOT NULL,
  subject_cid text,
  lenient boolean NOT NULL,
  created_at timestamptz NOT NULL,
  indexed_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  seq bigint
);
CREATE INDEX acceptance_invite ON acceptance (invite_uri);
CREATE INDEX acceptance_author ON acceptance (author);

-- Records that failed validation or verification: never served, kept for moderators.
CREATE TABLE rejection (
  id bigserial PRIMARY KEY,
  uri text,
  collection text,
  repo text,
  rev text,
  cid text,
  seq bigint,
  reason text NOT NULL,
  detail text,
  record jsonb,
  rejected_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejection_uri ON rejection (uri);
CREATE INDEX rejection_time ON rejection (rejected_at);

-- Latest #account status per DID; an absent row means active.
CREATE TABLE account (
  did text PRIMARY KEY,
  active boolean NOT NULL,
  status text,
  seq bigint,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_inactive ON account (did) WHERE NOT active;

-- Down Migration
DROP TABLE account, rejection, acceptance, invite_version, invite, record_rev, relay_cursor;
