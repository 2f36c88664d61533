-- The health of each source (connector): when it was first seen, its last error
-- outside a run (a drop folder that cannot be listed), and when the administrators
-- were last told it is stale (no successful import within its max_age). Its last
-- success and its refused snapshots are in `runs`. An API keeps where its
-- synchronisation stands in `cursor` (JSON), written with the import it ends.
CREATE TABLE source_status (
    connector         TEXT PRIMARY KEY,
    first_seen_at     TEXT NOT NULL,
    last_error_at     TEXT,
    last_error        TEXT,
    stale_reported_at TEXT,
    cursor            TEXT
);
