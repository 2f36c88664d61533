-- The administrators' digest, and addresses compared without case for the daily limit.
CREATE TABLE admin_reports (
    id            INTEGER PRIMARY KEY,
    sent_at       TEXT    NOT NULL,
    covered_until TEXT    NOT NULL,   -- what happened before this was reported
    failed        INTEGER NOT NULL,
    refused       INTEGER NOT NULL,
    message_id    TEXT
);
-- What a report told, so that it is told once whatever the clock's resolution.
ALTER TABLE alerts ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN reported INTEGER NOT NULL DEFAULT 0;

-- The daily limit per recipient compares addresses without case.
DROP INDEX alerts_recipient_sent;
CREATE INDEX alerts_recipient_sent ON alerts (recipient COLLATE NOCASE, sent_at);
