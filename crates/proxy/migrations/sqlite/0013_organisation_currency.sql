-- Schema version 13: the currency of each connected organisation, as its provider said at connect
-- (Xero's `BaseCurrency`; a HubRise location's `currency`, in which its orders' money is written).
ALTER TABLE organisations ADD COLUMN currency TEXT;
