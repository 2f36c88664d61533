-- The encoding a text export was decoded with (`UTF-8`, `windows-1252`…), as
-- `encoding = "auto"` chose it or the connector set it; NULL for workbooks,
-- XML (it declares its own) and APIs.
ALTER TABLE runs ADD COLUMN encoding TEXT;

-- Records that raised at least one event (or brought a message): with
-- `unchanged` (records that raised none) and `rejected`, every record read is
-- accounted for.
ALTER TABLE runs ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
