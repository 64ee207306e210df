-- Schema version 5: what the hardening needs.

-- The invoice a payment waits for (its `invoice.client_ref`), so delivery selects only payments
-- that can go now and a payment waiting for an invoice never holds back the ones behind it.
ALTER TABLE documents ADD COLUMN waits_for TEXT;
UPDATE documents SET waits_for = json_extract(body, '$.invoice.client_ref') WHERE kind = 'payment';

-- A record sealed under the master key when the database is made (or first opened with keys that
-- open every sealed row): a start with keys that cannot open it is refused.
CREATE TABLE key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Written and deleted by the readiness check while writes are failing, to see whether they work
-- again (it needs fresh pages, as a pushed document does).
CREATE TABLE write_probe (
    id  INTEGER PRIMARY KEY,
    pad BLOB NOT NULL
);

-- Which documents a bundle holds while their fate is open (a settled bundle's body is deleted).
CREATE INDEX documents_bundle ON documents(bundle_key) WHERE bundle_key IS NOT NULL;

-- Why a connection left `connected`: `refresh_refused` (Xero refused the refresh token: only a
-- reconnect helps), `api_refused` (API calls kept being refused although the refresh worked: it is
-- probed again now and then), `tenant_gone` (the organisation is no longer connected at Xero),
-- `disconnected` (disconnected from Ledgerlink).
ALTER TABLE connections ADD COLUMN status_reason TEXT;
