-- A provider's notifications already taken in (Xero's webhook events, HubRise's callbacks), kept
-- until their provider has stopped sending them again: one sighting across proxies, so a
-- notification delivered twice, or to two replicas, reaches the device once.
CREATE TABLE sightings (
    kind text NOT NULL,
    key bytea NOT NULL,
    until timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
