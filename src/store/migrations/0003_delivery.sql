-- Delivery: every attempt to hand an alert to a transport, and the alert's progress.

ALTER TABLE alerts ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN sent_at TEXT;
ALTER TABLE alerts ADD COLUMN message_id TEXT;

-- One attempt to deliver one alert (a digest message is one attempt for each of
-- its alerts, sharing one Message-ID).
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    alert_id     INTEGER NOT NULL REFERENCES alerts (id),
    attempted_at TEXT    NOT NULL,
    transport    TEXT    NOT NULL,               -- file | smtp
    outcome      TEXT    NOT NULL CHECK (outcome IN ('sent', 'transient', 'permanent', 'interrupted')),
    reply        TEXT,                           -- the relay's reply, or why it failed
    message_id   TEXT
);
CREATE INDEX deliveries_alert ON deliveries (alert_id);
-- Messages sent to one address lately, for the daily limit per recipient.
CREATE INDEX alerts_recipient_sent ON alerts (recipient, sent_at);
