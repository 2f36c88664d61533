-- A run may be `unchanged`: its content was identical to the connector's last
-- applied snapshot, so nothing was read again, and the source is known healthy
-- (a source that sends the same file every day is not reported stale). SQLite
-- cannot change a CHECK constraint in place: the table is rebuilt (the store
-- runs its migrations with the foreign key checks off, then checks every link).
CREATE TABLE runs_new (
    id               INTEGER PRIMARY KEY,
    connector        TEXT    NOT NULL,
    source           TEXT    NOT NULL,              -- the file (or API) read
    checksum         TEXT,                          -- xxh3-128 of the file content, hex
    fingerprint      TEXT    NOT NULL,              -- xxh3 of the connector file: a changed connector re-reads refused files
    started_at       TEXT    NOT NULL,
    finished_at      TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('applied', 'refused', 'unchanged')),
    baseline         INTEGER NOT NULL,              -- first import of the connector: records without alerting
    rows             INTEGER NOT NULL DEFAULT 0,
    unchanged        INTEGER NOT NULL DEFAULT 0,
    created          INTEGER NOT NULL DEFAULT 0,
    step_changed     INTEGER NOT NULL DEFAULT 0,
    field_changed    INTEGER NOT NULL DEFAULT 0,
    disappeared      INTEGER NOT NULL DEFAULT 0,
    reappeared       INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0,
    warnings         INTEGER NOT NULL DEFAULT 0,
    reasons          TEXT    NOT NULL DEFAULT '[]', -- JSON array: why the snapshot was refused
    alerts_queued    INTEGER NOT NULL DEFAULT 0,
    alerts_cancelled INTEGER NOT NULL DEFAULT 0,
    reported         INTEGER NOT NULL DEFAULT 0,
    messages         INTEGER NOT NULL DEFAULT 0,
    kind             TEXT    NOT NULL DEFAULT 'import',
    stalled          INTEGER NOT NULL DEFAULT 0,
    deadline         INTEGER NOT NULL DEFAULT 0,
    review           INTEGER NOT NULL DEFAULT 0
);
INSERT INTO runs_new (id, connector, source, checksum, fingerprint, started_at, finished_at,
                      status, baseline, rows, unchanged, created, step_changed, field_changed,
                      disappeared, reappeared, rejected, warnings, reasons, alerts_queued,
                      alerts_cancelled, reported, messages, kind, stalled, deadline, review)
SELECT id, connector, source, checksum, fingerprint, started_at, finished_at,
       status, baseline, rows, unchanged, created, step_changed, field_changed,
       disappeared, reappeared, rejected, warnings, reasons, alerts_queued,
       alerts_cancelled, reported, messages, kind, stalled, deadline, review
FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_connector_checksum ON runs (connector, checksum);
