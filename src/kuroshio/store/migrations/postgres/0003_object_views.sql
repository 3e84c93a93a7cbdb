-- The reader copies of objects whose only per-reader rewriting is granular markings, computed at
-- write time (markings/redact.py): one row per set of granular audiences a reader may be in (mask),
-- so a page of such objects costs one indexed range read, not a copy of every variant per row.
CREATE TABLE object_views (
    coll  INTEGER NOT NULL,
    added BIGINT NOT NULL,
    mask  INTEGER NOT NULL,
    raw   BYTEA NOT NULL,
    PRIMARY KEY (coll, added, mask)
);

-- the copies held in the object row until now go: where an object has no stored copy, reads redact
-- the raw object for the reader (markings/redact.py), so dropping them changes no reader's view
ALTER TABLE objects DROP COLUMN views;
