-- Schema version 2: pushed documents (the outbox), their events, per-connection mappings and the
-- contact-id cache of the delivery engine.

CREATE TABLE documents (
    id            TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    connection_id TEXT NOT NULL REFERENCES connections(id),
    kind          TEXT NOT NULL CHECK (kind IN ('invoice', 'payment', 'shift')),
    client_ref    TEXT NOT NULL,
    -- The document as accepted (canonical JSON of the wire type).
    body          TEXT NOT NULL,
    state         TEXT NOT NULL,
    xero_id       TEXT,
    xero_number   TEXT,
    message       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (device_id, client_ref)
);
CREATE INDEX documents_outbox ON documents(connection_id, state, kind, created_at);

-- Every state change and provider event, in order; devices read them from a cursor (seq).
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id TEXT NOT NULL,
    device_id     TEXT,
    document_id   TEXT,
    body          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX events_device ON events(device_id, seq);

CREATE TABLE mappings (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id),
    body          TEXT NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE contact_ids (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    name_key      TEXT NOT NULL,
    contact_id    TEXT NOT NULL,
    PRIMARY KEY (connection_id, name_key)
);
