-- Partner sync state (federation/): per link and collection, the pull checkpoint (written in the
-- same transaction as the objects it covers) and the link's health (last success, errors, counts).
CREATE TABLE sync_state (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL,
    updated TEXT NOT NULL
);
