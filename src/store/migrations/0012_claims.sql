-- Claims have an owner: an alert being sent records which process holds it (its
-- process id and a random start token) and until when its lease runs. Another
-- process takes a claim back only when its owner is gone (its lock file is no
-- longer held) or its lease has run out (`store/claims.rs`).
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE alerts ADD COLUMN claimed_until TEXT;
CREATE INDEX alerts_claimed ON alerts (claimed_by) WHERE status = 'sending';

-- The state of each transport, shared by every process on this database (the
-- daemon, `outbox flush`, `outbox list`, /metrics): a relay that refuses
-- connections, fails TLS or authentication pauses the transport, and alerts wait.
CREATE TABLE transports (
    name         TEXT PRIMARY KEY,              -- file | smtp
    paused_since TEXT,                          -- the start of the outage; NULL: working
    paused_until TEXT,                          -- the next try
    failures     INTEGER NOT NULL DEFAULT 0,    -- consecutive relay-level failures
    reason       TEXT,                          -- the last one, as the relay or the system said it
    updated_at   TEXT NOT NULL
);

-- Attempts to send the administrators' digest that did not succeed: the next
-- one waits, with the same backoff as alerts.
CREATE TABLE admin_attempts (
    id           INTEGER PRIMARY KEY,
    attempted_at TEXT NOT NULL,
    outcome      TEXT NOT NULL,                 -- transient | permanent | relay
    reply        TEXT,
    retry_at     TEXT NOT NULL
);
