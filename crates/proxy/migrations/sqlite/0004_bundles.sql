-- Schema version 4: every bundle sent to Xero, exactly as sent, so a bundle whose outcome is unknown
-- goes again byte for byte under the same Idempotency-Key while Xero still replays it.
CREATE TABLE bundles (
    idempotency_key TEXT PRIMARY KEY,
    connection_id   TEXT NOT NULL,
    path            TEXT NOT NULL,
    collection      TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- JSON list of the document ids, in the order of the bundle's elements.
    members         TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
ALTER TABLE documents ADD COLUMN bundle_key TEXT;
