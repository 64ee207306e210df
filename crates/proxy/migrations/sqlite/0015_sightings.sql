-- A provider's notifications already taken in (Xero's webhook events, HubRise's callbacks), kept
-- until their provider has stopped sending them again, so one sent twice reaches the device once.
CREATE TABLE sightings (
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    until INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
