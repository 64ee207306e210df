-- Which proxy delivers each connection's documents (see LeaseStore). SQLite is one process's, so
-- the lease is held by that process's rounds in turn; the table keeps the rule and the pacing the
-- same on both backends. Times are milliseconds since the epoch.
CREATE TABLE delivery_leases (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    released INTEGER NOT NULL DEFAULT 0,
    pacing TEXT
);

-- Attempts counted per kind and key in numbered windows (see the Postgres migration).
CREATE TABLE throttles (
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    win INTEGER NOT NULL,
    n INTEGER NOT NULL,
    prev INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);

-- Calls counted in slices of a window (see the Postgres migration).
CREATE TABLE call_slices (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    slice INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (kind, key, slice)
);

-- Which proxy is refreshing a token set (see the Postgres migration); kept alike on SQLite.
CREATE TABLE refresh_leases (
    token_set_id TEXT PRIMARY KEY REFERENCES token_sets (id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
