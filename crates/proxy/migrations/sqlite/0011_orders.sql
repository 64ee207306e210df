-- Schema version 11: orders (document kind `order`), pushed to an order hub (HubRise).
--
-- Widens the kind's CHECK constraint the way 0007 did (see there why editing the stored definition
-- is safe): no row on disk changes.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
                     'CHECK (kind IN (''invoice'', ''payment'', ''shift'', ''credit_note''))',
                     'CHECK (kind IN (''invoice'', ''payment'', ''shift'', ''credit_note'', ''order''))')
 WHERE type = 'table' AND name = 'documents';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_cookie_0011 (x INTEGER);
DROP TABLE schema_cookie_0011;
