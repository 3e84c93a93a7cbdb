-- Kuroshio node store, schema version 1 (SQLite).
CREATE TABLE organisations (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    identity_id   TEXT NOT NULL UNIQUE,
    identity_json BLOB NOT NULL,
    home          INTEGER NOT NULL DEFAULT 0,
    created       TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    org_id        INTEGER NOT NULL REFERENCES organisations(id),
    role          INTEGER NOT NULL,
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created       TEXT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    secret_hash TEXT NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    created     TEXT NOT NULL
);

CREATE TABLE collections (
    no           INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    api_root     TEXT NOT NULL,
    alias        TEXT NOT NULL,
    title        TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    allow_custom INTEGER NOT NULL DEFAULT 0,
    last_added   INTEGER NOT NULL DEFAULT 0,
    l0_count     INTEGER NOT NULL DEFAULT 0,
    l1_count     INTEGER NOT NULL DEFAULT 0,
    created      TEXT NOT NULL,
    UNIQUE (api_root, alias)
);

CREATE TABLE collection_access (
    collection_id TEXT NOT NULL REFERENCES collections(id),
    org_id        INTEGER NOT NULL REFERENCES organisations(id),
    can_read      INTEGER NOT NULL,
    can_write     INTEGER NOT NULL,
    PRIMARY KEY (collection_id, org_id)
);

-- Every version of every object. date_added is unique per collection and assigned in commit
-- order (microseconds since the epoch), so paging by date_added never misses or repeats a row.
-- (coll, id, version) is unique, which the write path enforces under the collection lock.
CREATE TABLE objects (
    seq           INTEGER PRIMARY KEY,
    coll          INTEGER NOT NULL,
    id            TEXT NOT NULL,
    type          TEXT NOT NULL,
    version       TEXT NOT NULL,
    version_text  TEXT NOT NULL,
    spec_version  TEXT NOT NULL,
    date_added    INTEGER NOT NULL,
    is_latest     INTEGER NOT NULL,
    is_first      INTEGER NOT NULL,
    created_by    TEXT,
    submitted_by  INTEGER NOT NULL,
    raw           BLOB NOT NULL
);
CREATE UNIQUE INDEX objects_by_added ON objects (coll, date_added);

-- The id index, in levels (a log-structured merge): new entries go to level 0, a small region of
-- the B-tree, so a commit touches few pages whatever the store's size; level 0 is merged into
-- level 1, and level 1 into level 2, in sorted batches. idh is a 62-bit hash of the STIX id;
-- added is the object's date_added, which identifies its row within the collection.
CREATE TABLE id_index (
    level INTEGER NOT NULL,
    coll  INTEGER NOT NULL,
    idh   INTEGER NOT NULL,
    added INTEGER NOT NULL,
    PRIMARY KEY (level, coll, idh, added)
) WITHOUT ROWID;

CREATE TABLE status (
    id                TEXT PRIMARY KEY,
    api_root          TEXT NOT NULL,
    collection_id     TEXT NOT NULL,
    user_id           INTEGER NOT NULL,
    org_id            INTEGER NOT NULL,
    request_timestamp TEXT NOT NULL,
    total_count       INTEGER NOT NULL,
    success_count     INTEGER NOT NULL,
    failure_count     INTEGER NOT NULL,
    pending_count     INTEGER NOT NULL,
    details           BLOB NOT NULL
);
