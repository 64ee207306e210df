-- Schema version 3: when a document's last delivery attempt had an unknown outcome (a timeout, a
-- dropped answer, the process stopped mid-call). Past Xero's replay window it is looked up in Xero by
-- its marker before being sent again.
ALTER TABLE documents ADD COLUMN unknown_since INTEGER;
