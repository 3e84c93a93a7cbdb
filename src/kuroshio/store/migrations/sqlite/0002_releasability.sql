-- Kuroshio node store, schema version 2 (SQLite): releasability.
-- Organisations: the community they belong to (TLP:GREEN), whose client they are (TLP:AMBER), country.
ALTER TABLE organisations ADD COLUMN community TEXT;
ALTER TABLE organisations ADD COLUMN client_of INTEGER;
ALTER TABLE organisations ADD COLUMN country TEXT;

-- Collections: the marking an object without one takes, exercise-only, readable without credentials.
ALTER TABLE collections ADD COLUMN default_marking TEXT NOT NULL DEFAULT 'marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421';
ALTER TABLE collections ADD COLUMN exercise INTEGER NOT NULL DEFAULT 0;
ALTER TABLE collections ADD COLUMN public INTEGER NOT NULL DEFAULT 0;

-- Audiences are interned: an object row points at its audience; a reader's visible audiences are
-- those sharing a key with the reader (audience_keys), found once per query.
CREATE TABLE audiences (
    aid  INTEGER PRIMARY KEY,
    keys TEXT NOT NULL UNIQUE
);
CREATE TABLE audience_keys (
    key TEXT NOT NULL,
    aid INTEGER NOT NULL,
    PRIMARY KEY (key, aid)
) WITHOUT ROWID;

-- Per object version: the originating organisation, the audience of its own markings, its effective
-- audience (own, narrowed by the objects it depends on), what per-reader rewriting it needs (shape:
-- 1 granular markings, 2 container references, 4 sighting references) and its granular audiences.
ALTER TABLE objects ADD COLUMN origin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN own_audience INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN audience INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN shape INTEGER NOT NULL DEFAULT 0;
ALTER TABLE objects ADD COLUMN granular BLOB;
-- the reader copies of an object with granular markings, computed at write time (markings/redact.py)
ALTER TABLE objects ADD COLUMN views BLOB;
ALTER TABLE objects ADD COLUMN deps BLOB;

-- Which object versions depend on which ids (relationship ends, sighted objects, container members),
-- so that a change of one object's audience re-evaluates those that depend on it.
CREATE TABLE dependencies (
    coll    INTEGER NOT NULL,
    ref_idh INTEGER NOT NULL,
    added   INTEGER NOT NULL,
    PRIMARY KEY (coll, ref_idh, added)
) WITHOUT ROWID;

-- Marking definitions this node knows (beyond the predefined ones), whatever collection brought them.
CREATE TABLE marking_definitions (
    id     TEXT PRIMARY KEY,
    origin INTEGER NOT NULL,
    body   BLOB NOT NULL
);

-- The audit log: append-only, hash-chained (see audit.py). audit_head holds the chain's end and is
-- locked by every appender, so records are chained in commit order.
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY,
    ts     TEXT NOT NULL,
    record BLOB NOT NULL,
    prev   TEXT NOT NULL,
    hash   TEXT NOT NULL
);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Paging filters on visibility while walking date_added: with the audience and the latest flag in
-- the index, rows a reader may not see are skipped without reading them.
CREATE INDEX objects_visible ON objects (coll, date_added, audience, is_latest);
