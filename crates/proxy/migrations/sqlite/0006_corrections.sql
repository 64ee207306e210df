-- Schema version 6: putting a mistake right.

-- A document refused by Xero can be corrected under its `client_ref`: the row keeps its id and
-- becomes the next version; the version it replaced is kept in `document_versions`.
ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
-- How many times a person asked for the document to be sent again unchanged. With the version it
-- goes into every Idempotency-Key the document is sent under, so a new attempt is never answered
-- with Xero's replay of the last one.
ALTER TABLE documents ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;
-- Why a person discarded it (state `discarded`).
ALTER TABLE documents ADD COLUMN discard_reason TEXT;

CREATE TABLE document_versions (
    document_id TEXT NOT NULL REFERENCES documents(id),
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL,
    message     TEXT,
    created_at  INTEGER NOT NULL,
    replaced_at INTEGER NOT NULL,
    PRIMARY KEY (document_id, version)
);
