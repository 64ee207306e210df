-- Schema version 10: re-pairing a paired device to another organisation.
-- `moves_from` is the connection a paired device was on when it asked to pair again, proving it
-- with its own credentials; the device is moved only from that one, once the person agrees on the
-- pairing page (a device id alone moves nothing).
ALTER TABLE pairings ADD COLUMN moves_from TEXT;
-- A reloaded organisation chooser finds its choice by the browser that made it.
CREATE INDEX pending_choices_browser ON pending_choices(browser_hash, expires_at);
