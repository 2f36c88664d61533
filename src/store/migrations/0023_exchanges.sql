-- Exchanges (issue 21): what a beneficiary and the instructing service write to
-- each other about a dossier, through the front office, the staff view or by
-- e-mail, kept on the dossier for good (until the RGPD purge of its personal
-- data). Each row is also the outbox of its own forwarding: the e-mail that
-- carries it to the other side, retried like an alert. New table only.
CREATE TABLE exchanges (
    id          INTEGER PRIMARY KEY,
    dossier_id  INTEGER NOT NULL REFERENCES dossiers (id),
    at          TEXT    NOT NULL,            -- written (front office, staff view) or received (e-mail)
    direction   TEXT    NOT NULL CHECK (direction IN ('beneficiary', 'service')),
                                             -- who wrote it: the beneficiary's side, or the service's
    channel     TEXT    NOT NULL CHECK (channel IN ('web', 'email')),
    kind        TEXT    NOT NULL DEFAULT 'message'
                        CHECK (kind IN ('message', 'auto_reply', 'bounce')),
    author      TEXT    NOT NULL,            -- lowercase e-mail address of the writer
    body        TEXT    NOT NULL,            -- the new text (quotes and signatures left out)
    original    TEXT,                        -- an e-mail as received (RFC 5322), kept whole
    received_id TEXT UNIQUE,                 -- an e-mail's Message-ID: recorded once
    -- Forwarding to the other side; all NULL when nothing is forwarded
    -- (auto-replies, bounces).
    recipient   TEXT,
    status      TEXT CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_at      TEXT,
    sent_at     TEXT,
    message_id  TEXT,                        -- the Message-ID of the forwarding e-mail
    reason      TEXT                         -- why the last attempt did not deliver
);
CREATE INDEX exchanges_dossier ON exchanges (dossier_id, at);
CREATE INDEX exchanges_due ON exchanges (status, due_at) WHERE status = 'pending';
