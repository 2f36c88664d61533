-- The front office's dossier page (issue 20, item 5): the messages Alertissimo
-- sent, as they left (subject and plain text), so that a beneficiary can read
-- them again on the page of their dossier. One row per message (a digest is one
-- message for several alerts, which name it by their message_id). New table only.
CREATE TABLE kept_messages (
    message_id TEXT NOT NULL PRIMARY KEY,  -- the Message-ID, as alerts.message_id
    recipient  TEXT NOT NULL,              -- lowercase
    subject    TEXT NOT NULL,
    text       TEXT NOT NULL,              -- the plain text part
    sent_at    TEXT NOT NULL
);

-- The audit also records the dossier pages ('dossier') and the messages read
-- again ('message'): the table is rebuilt with the wider CHECK.
CREATE TABLE web_audit_new (
    id         INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    email      TEXT    NOT NULL,            -- lowercase: the session's address
    action     TEXT    NOT NULL CHECK (action IN ('sign-in', 'list', 'dossier', 'message')),
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    client     TEXT                         -- the client's IP address
);
INSERT INTO web_audit_new (id, at, email, action, dossier_id, client)
    SELECT id, at, email, action, dossier_id, client FROM web_audit;
DROP TABLE web_audit;
ALTER TABLE web_audit_new RENAME TO web_audit;
CREATE INDEX web_audit_dossier ON web_audit (dossier_id, at);
