-- Schema version 12: the provider's own status for a sent document, as last heard from it
-- (HubRise: an order `cancelled` or `delivered` by the restaurant). Informational: the document's
-- state stays what delivery made it.
ALTER TABLE documents ADD COLUMN provider_status TEXT;
