-- A compact dossier state, so that a first import of a million dossiers writes
-- half as much (the Rust hook `fields::migrate_0005` converts existing rows):
--  * `dossiers.fields` becomes a compact blob whose field names live once in
--    `field_names` (as JSON keys they took more room than the values);
--  * the change-detection state is keyed by dossier row, so that a first import
--    appends to it instead of inserting at random places of a text-keyed tree.
--    It keeps a 96-bit hash of the source id: the import matches ids on it, and
--    checks the stored id before it trusts a match.
CREATE TABLE field_names (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

CREATE TABLE dossier_state (
    connector  TEXT    NOT NULL,
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    id_hash    INTEGER NOT NULL,                 -- first 64 bits of xxh3-128 of the source id
    id_check   INTEGER NOT NULL,                 -- its next 32 bits
    row_hash   INTEGER NOT NULL,                 -- xxh3 of the raw record, for change detection
    present    INTEGER NOT NULL,                 -- 0 once it disappeared from a full export
    PRIMARY KEY (connector, dossier_id)
) WITHOUT ROWID;
