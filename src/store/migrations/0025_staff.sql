-- The staff view (issue 21): an instructor signs in with the address of their
-- dossiers' `instructor.email`, and sees those dossiers. The lookup of a
-- dossier by its instructors' addresses is kept as the beneficiaries' is
-- (`store/beneficiaries.rs`; the Rust hook `beneficiaries::migrate_0025` fills
-- it from the stored dossiers). Imports keep it in step, the purge deletes a
-- purged dossier's rows.
CREATE TABLE instructor_emails (
    email      TEXT    NOT NULL,
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    PRIMARY KEY (email, dossier_id)
) WITHOUT ROWID;

-- The audit also records the staff's pages: a dossier's staff page
-- ('staff-dossier') and a reply written there ('staff-reply'). The table is
-- rebuilt with the wider CHECK.
CREATE TABLE web_audit_new (
    id         INTEGER PRIMARY KEY,
    at         TEXT    NOT NULL,
    email      TEXT    NOT NULL,            -- lowercase: the session's address
    action     TEXT    NOT NULL CHECK (action IN ('sign-in', 'list', 'dossier', 'message',
                                                  'staff-dossier', 'staff-reply')),
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    client     TEXT                         -- the client's IP address
);
INSERT INTO web_audit_new (id, at, email, action, dossier_id, client)
    SELECT id, at, email, action, dossier_id, client FROM web_audit;
DROP TABLE web_audit;
ALTER TABLE web_audit_new RENAME TO web_audit;
CREATE INDEX web_audit_dossier ON web_audit (dossier_id, at);
