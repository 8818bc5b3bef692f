-- Up Migration

-- Bumped by every request to sync a repo. A sync remembers the generation it was leased at and
-- marks the repo done only if no request came in meanwhile: a resync asked for while a sync is
-- in flight (its snapshot may predate the break that asked for it) is redone, not lost.
ALTER TABLE repo_sync ADD COLUMN generation integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE repo_sync DROP COLUMN generation;
