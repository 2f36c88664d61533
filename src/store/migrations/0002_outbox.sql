-- The outbox: alerts that rules decided to send, and the runs' alert counts.

ALTER TABLE runs ADD COLUMN alerts_queued INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN alerts_cancelled INTEGER NOT NULL DEFAULT 0;

-- One message a rule decided to send to one recipient for one event. Alerts to
-- the same recipient that are due together may leave as one digest message.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    key         TEXT    NOT NULL UNIQUE,          -- idempotency: rule, dossier, event, recipient
    run_id      INTEGER REFERENCES runs (id),     -- the import that queued it
    event_id    INTEGER NOT NULL REFERENCES events (id),
    dossier_id  INTEGER NOT NULL REFERENCES dossiers (id),
    rule        TEXT    NOT NULL,
    template    TEXT    NOT NULL,
    class       TEXT    NOT NULL CHECK (class IN ('mandatory', 'informational')),
    role        TEXT    NOT NULL,                 -- beneficiary | instructor | service | address
    recipient   TEXT    NOT NULL,                 -- the e-mail address
    digest      INTEGER NOT NULL,                 -- may be gathered with others to the same recipient
    hold_step   TEXT,                             -- debounce: cancelled if the dossier leaves this step before due_at
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')),
    created_at  TEXT    NOT NULL,
    due_at      TEXT    NOT NULL,                 -- not before: debounce, digest schedule, sending windows
    updated_at  TEXT    NOT NULL,
    reason      TEXT                              -- why it was cancelled or failed
);
CREATE INDEX alerts_due ON alerts (status, due_at);
CREATE INDEX alerts_dossier ON alerts (dossier_id, rule, recipient);
CREATE INDEX alerts_run ON alerts (run_id, recipient);
