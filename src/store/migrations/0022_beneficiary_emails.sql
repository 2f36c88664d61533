-- The front office finds a beneficiary's dossiers by address (issue 20): each
-- address of a dossier's `beneficiary.email`, trimmed and in lowercase, with the
-- dossier's row id (`store/beneficiaries.rs`; the Rust hook
-- `beneficiaries::migrate_0021` fills it from the stored dossiers). Imports keep
-- it in step with the dossiers' fields, the purge deletes a purged dossier's rows.
CREATE TABLE beneficiary_emails (
    email      TEXT    NOT NULL,
    dossier_id INTEGER NOT NULL REFERENCES dossiers (id),
    PRIMARY KEY (email, dossier_id)
) WITHOUT ROWID;
