-- Replies by e-mail (issue 21, item 3): the mailbox of `[inbound]` read over IMAP.
-- New tables and indexes only.

-- The per-dossier token of the plus address replies go to
-- (`suivi-aides+<token>@region.fr`): random, drawn the first time a message
-- about the dossier leaves, unique.
CREATE TABLE thread_tokens (
    dossier_id INTEGER PRIMARY KEY REFERENCES dossiers (id),
    token      TEXT    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE UNIQUE INDEX thread_tokens_token ON thread_tokens (token);

-- The Message-IDs we sent, looked up when a reply names them in In-Reply-To or
-- References (or a bounce in its attached headers).
CREATE INDEX alerts_message_id ON alerts (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX exchanges_message_id ON exchanges (message_id) WHERE message_id IS NOT NULL;

-- Messages of the mailbox that match no dossier: filed in the unmatched folder
-- and told once in the administrators' digest. Recorded once (Message-ID).
CREATE TABLE inbound_unmatched (
    id          INTEGER PRIMARY KEY,
    received_at TEXT    NOT NULL,
    received_id TEXT    NOT NULL UNIQUE,     -- the e-mail's Message-ID
    sender      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('message', 'auto_reply', 'bounce')),
    reported    INTEGER NOT NULL DEFAULT 0   -- told in an administrators' digest
);

-- The mailbox's health, one row: the last poll that worked, the failures since.
CREATE TABLE inbound_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_success  TEXT,
    last_failure  TEXT,
    failures      INTEGER NOT NULL DEFAULT 0, -- consecutive failed polls
    error         TEXT,                       -- why the last poll failed
    received      INTEGER NOT NULL DEFAULT 0  -- messages taken from the mailbox, ever
);
