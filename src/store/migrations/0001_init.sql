-- Initial schema: runs, dossiers (current state), events, rejected records.
-- Times are UTC, RFC 3339 text ("2026-11-28T22:47:48Z"), so that they sort as text.

-- One import of one connector: what was read, what changed, what was rejected.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    connector     TEXT    NOT NULL,
    source        TEXT    NOT NULL,              -- the file (or API) read
    checksum      TEXT,                          -- xxh3-128 of the file content, hex
    fingerprint   TEXT    NOT NULL,              -- xxh3 of the connector file: a changed connector re-reads refused files
    started_at    TEXT    NOT NULL,
    finished_at   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('applied', 'refused')),
    baseline      INTEGER NOT NULL,              -- first import of the connector: records without alerting
    rows          INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    created       INTEGER NOT NULL DEFAULT 0,
    step_changed  INTEGER NOT NULL DEFAULT 0,
    field_changed INTEGER NOT NULL DEFAULT 0,
    disappeared   INTEGER NOT NULL DEFAULT 0,
    reappeared    INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    warnings      INTEGER NOT NULL DEFAULT 0,
    reasons       TEXT    NOT NULL DEFAULT '[]'  -- JSON array: why the snapshot was refused
);
CREATE INDEX runs_connector_checksum ON runs (connector, checksum);

-- The last known state of every dossier.
CREATE TABLE dossiers (
    id              INTEGER PRIMARY KEY,
    connector       TEXT    NOT NULL,
    source_id       TEXT    NOT NULL,            -- the source system's identifier
    reference       TEXT    NOT NULL,            -- shown to people (the id when the source has none)
    scheme          TEXT,
    step            TEXT    NOT NULL,
    status          TEXT    NOT NULL,            -- the source's label
    step_entered_at TEXT    NOT NULL,            -- from the source's step date when it has one
    fields          TEXT    NOT NULL,            -- JSON object of canonical fields
    first_run       INTEGER NOT NULL REFERENCES runs (id),
    last_run        INTEGER NOT NULL REFERENCES runs (id)
);
CREATE INDEX dossiers_reference ON dossiers (reference);

-- The compact change-detection state, one narrow row per dossier, read whole at
-- each import: kept apart from the wide dossiers rows so that reading it is cheap.
CREATE TABLE dossier_keys (
    connector  TEXT    NOT NULL,
    source_id  TEXT    NOT NULL,
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    row_hash   INTEGER NOT NULL,                 -- xxh3 of the raw record, for change detection
    present    INTEGER NOT NULL,                 -- 0 once it disappeared from a full export
    PRIMARY KEY (connector, source_id)
) WITHOUT ROWID;

-- Facts detected by comparing a snapshot with the stored state. They were
-- detected when their run started (runs.started_at).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    dossier_id  INTEGER NOT NULL REFERENCES dossiers (id),
    kind        TEXT    NOT NULL,
    from_step   TEXT,
    to_step     TEXT,
    field       TEXT,
    old_value   TEXT,
    new_value   TEXT,
    occurred_at TEXT    NOT NULL,               -- when it happened, per the source when known
    baseline    INTEGER NOT NULL                -- recorded by a baseline import: never alerts
);
CREATE INDEX events_dossier ON events (dossier_id, occurred_at);

-- Records a run could not use (or values it ignored), with where and why.
CREATE TABLE rejections (
    id        INTEGER PRIMARY KEY,
    run_id    INTEGER NOT NULL REFERENCES runs (id),
    severity  TEXT    NOT NULL CHECK (severity IN ('rejected', 'warning')),
    file      TEXT    NOT NULL,
    line      INTEGER,
    record    INTEGER,
    source_id TEXT,
    field     TEXT,
    reason    TEXT    NOT NULL
);
CREATE INDEX rejections_run ON rejections (run_id);
