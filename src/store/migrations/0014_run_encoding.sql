-- The encoding a text export was decoded with (`UTF-8`, `windows-1252`…), as
-- `encoding = "auto"` chose it or the connector set it; NULL for workbooks,
-- XML (it declares its own) and APIs.
ALTER TABLE runs ADD COLUMN encoding TEXT;
