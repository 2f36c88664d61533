-- Dossiers are found by reference through `reference_index` (`store/references.rs`;
-- the Rust hook `references::migrate_0011` fills it from the stored dossiers)
-- rather than an SQL index: that index took its entries in the random order of
-- the references, about a seventh of the first import of a million dossiers.
CREATE TABLE reference_index (
    id      INTEGER PRIMARY KEY,                 -- parts in the order they were written
    entries BLOB    NOT NULL                     -- 8 bytes an entry: reference hash, row id
);
DROP INDEX dossiers_reference;

-- A dossier's events are found by its id alone and sorted (a dossier has a few):
-- a key without the event's time takes a third of the room and of the work.
DROP INDEX events_dossier;
CREATE INDEX events_dossier ON events (dossier_id);
