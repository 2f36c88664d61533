-- The change-detection state of a connector becomes a few blobs, read and
-- written whole by each import (`store/index.rs`; the Rust hook
-- `index::migrate_0010` converts `dossier_state`): reading a row a dossier took
-- a quarter of a second import of a million dossiers, and rewriting the pages
-- of every changed dossier's row a quarter of its commit.
CREATE TABLE change_index (
    connector TEXT    NOT NULL,
    part      INTEGER NOT NULL,                  -- 65 536 entries a part, in order
    entries   BLOB    NOT NULL,                  -- 24 bytes a dossier: id hash, row id, raw hash, present
    PRIMARY KEY (connector, part)
);

-- Whether a dossier was in its source's latest full snapshot, for every query.
ALTER TABLE dossiers ADD COLUMN present INTEGER NOT NULL DEFAULT 1;
UPDATE dossiers SET present = 0
    WHERE id IN (SELECT dossier_id FROM dossier_state WHERE present = 0);
