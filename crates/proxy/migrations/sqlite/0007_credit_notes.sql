-- Schema version 7: refunds, pushed as credit notes (document kind `credit_note`).
--
-- The kind's CHECK constraint names the kinds allowed. SQLite cannot alter a CHECK constraint, and
-- rebuilding the table would mean dropping the parent of `document_versions` with foreign keys on;
-- widening a CHECK constraint is one of the changes SQLite documents as safe to make by editing the
-- table's stored definition (https://www.sqlite.org/lang_altertable.html, "otherwise"), since no
-- row on disk changes. `RESET` makes this connection read the new definition; the table made and
-- dropped after it bumps the schema cookie, so any other open connection does too.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
                     'CHECK (kind IN (''invoice'', ''payment'', ''shift''))',
                     'CHECK (kind IN (''invoice'', ''payment'', ''shift'', ''credit_note''))')
 WHERE type = 'table' AND name = 'documents';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_cookie_0007 (x INTEGER);
DROP TABLE schema_cookie_0007;
