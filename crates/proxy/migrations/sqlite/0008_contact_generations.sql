-- Schema version 8: how many times a contact's cached ContactID was dropped because Xero no longer
-- knew it. It goes into the Idempotency-Key of the contact made again by that name: the same key
-- would be answered, for about six minutes, with Xero's replay of the first creation (the id that
-- is gone).
CREATE TABLE contact_generations (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    name_key      TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    PRIMARY KEY (connection_id, name_key)
);
