-- Ledgerlink proxy, schema version 1: pairings, Xero token sets (encrypted), connections, devices and
-- their credentials (hashed). Times are Unix milliseconds (UTC); ids are UUID text.

CREATE TABLE token_sets (
    id                TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    -- AEAD ciphertext of the token set; names its key id; bound to this row's id.
    ciphertext        BLOB NOT NULL,
    access_expires_at INTEGER NOT NULL,
    last_refresh_at   INTEGER,
    created_at        INTEGER NOT NULL,
    -- Bumped on every write: writers compare-and-swap on it.
    version           INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE connections (
    id                 TEXT PRIMARY KEY,
    provider           TEXT NOT NULL,
    tenant_id          TEXT NOT NULL,
    tenant_name        TEXT NOT NULL,
    xero_connection_id TEXT,
    token_set_id       TEXT REFERENCES token_sets(id) ON DELETE SET NULL,
    status             TEXT NOT NULL CHECK (status IN ('connected', 'needs_reconnect', 'disconnected')),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (provider, tenant_id)
);
CREATE INDEX connections_token_set ON connections(token_set_id);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    connection_id TEXT NOT NULL REFERENCES connections(id),
    paired_at     INTEGER NOT NULL,
    revoked_at    INTEGER,
    last_seen_at  INTEGER
);
CREATE INDEX devices_connection ON devices(connection_id);

CREATE TABLE device_tokens (
    hash        BLOB PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices(id),
    kind        TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    rotated_at  INTEGER,
    -- For a rotated refresh token: the pair that replaced it, encrypted, so a racing second process
    -- of the same device gets the same pair inside the reuse grace.
    successor   BLOB,
    revoked_at  INTEGER
);
CREATE INDEX device_tokens_device ON device_tokens(device_id);

CREATE TABLE pairings (
    id               TEXT PRIMARY KEY,
    device_code_hash BLOB NOT NULL UNIQUE,
    user_code        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    device_name      TEXT NOT NULL,
    provider         TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    connection_id    TEXT REFERENCES connections(id),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    last_poll_at     INTEGER
);
CREATE INDEX pairings_user_code ON pairings(user_code);

-- One authorization request to Xero: single use, bound to the browser that started it.
CREATE TABLE oauth_states (
    state_hash   BLOB PRIMARY KEY,
    pairing_id   TEXT NOT NULL REFERENCES pairings(id),
    browser_hash BLOB NOT NULL,
    verifier     BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);

-- A consent that covered several organisations, waiting for the person to pick one.
CREATE TABLE pending_choices (
    id_hash      BLOB PRIMARY KEY,
    pairing_id   TEXT NOT NULL REFERENCES pairings(id),
    browser_hash BLOB NOT NULL,
    token_set_id TEXT NOT NULL REFERENCES token_sets(id),
    tenants      TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
