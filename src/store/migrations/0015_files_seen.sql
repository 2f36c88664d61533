-- Every file of a drop folder a connector has read, as it was then: a file
-- unchanged since (same size and modification time) that was refused or passed
-- over by the same connector file (same fingerprint), or kept in place after its
-- import, is not opened again at each tick.
CREATE TABLE files_seen (
    connector TEXT    NOT NULL,
    path      TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,            -- modification time, nanoseconds since 1970
    checksum  TEXT,
    outcome   TEXT    NOT NULL,            -- applied | refused | unchanged | skipped
    run_id    INTEGER,                     -- the run that read it, when one was recorded
    fingerprint TEXT  NOT NULL,            -- the connector file's, when it read it
    seen_at   TEXT    NOT NULL,
    PRIMARY KEY (connector, path)
);
