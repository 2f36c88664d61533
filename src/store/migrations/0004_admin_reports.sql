-- The administrators' digest: failed alerts and refused snapshots, reported once.
CREATE TABLE admin_reports (
    id            INTEGER PRIMARY KEY,
    sent_at       TEXT    NOT NULL,
    covered_until TEXT    NOT NULL,   -- what happened before this was reported
    failed        INTEGER NOT NULL,
    refused       INTEGER NOT NULL,
    message_id    TEXT
);
