-- The front office (issue 20): sign-in links, sessions, the audit of what was
-- shown to whom, the sign-in messages waiting to leave, and the server's secret
-- that signs the forms' CSRF tokens. New tables only.

-- The secret of this database's front office (32 random bytes), drawn the
-- first time a form is shown: the CSRF tokens are its HMACs. A copy of the
-- database (backup) keeps it; a new database draws another.
CREATE TABLE web_secret (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    secret     BLOB    NOT NULL,
    created_at TEXT    NOT NULL
);

-- One single-use sign-in link: only the SHA-256 of its token is kept.
CREATE TABLE login_tokens (
    hash       TEXT NOT NULL PRIMARY KEY,   -- SHA-256 of the token, hex
    email      TEXT NOT NULL,               -- lowercase
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) WITHOUT ROWID;
CREATE INDEX login_tokens_email ON login_tokens (email, created_at);

-- One signed-in browser: only the SHA-256 of its cookie's value is kept.
CREATE TABLE sessions (
    hash         TEXT NOT NULL PRIMARY KEY, -- SHA-256 of the cookie's value, hex
    email        TEXT NOT NULL,             -- lowercase
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
) WITHOUT ROWID;

-- Each sign-in asked (known address or not), by client address: the
-- per-client rate limit counts them. Kept one day.
CREATE TABLE sign_in_requests (
    at     TEXT NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX sign_in_requests_client ON sign_in_requests (client, at);

-- Who saw which dossier, when, and how: a sign-in (one row per dossier of the
-- address) or the list of dossiers shown. The purge deletes a purged dossier's rows.
CREATE TABLE web_audit (
    id         INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    email      TEXT    NOT NULL,            -- lowercase: the session's address
    action     TEXT    NOT NULL CHECK (action IN ('sign-in', 'list')),
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    client     TEXT                         -- the client's IP address
);
CREATE INDEX web_audit_dossier ON web_audit (dossier_id, at);

-- The sign-in messages, an outbox of their own: due at once, whatever the
-- sending windows, retried like alerts until their link expires. The token is
-- here in clear only while its message waits; it is erased once the message
-- left, failed or expired (the link then only exists in the mailbox).
CREATE TABLE sign_in_messages (
    id         INTEGER PRIMARY KEY,
    recipient  TEXT    NOT NULL,
    token      TEXT,
    expires_at TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL,
    due_at     TEXT    NOT NULL,
    sent_at    TEXT,
    message_id TEXT,
    reason     TEXT
);
CREATE INDEX sign_in_messages_due ON sign_in_messages (status, due_at);
