-- Retention of personal data: when a closed dossier lost its personal data
-- (`alertissimo purge`), so that it is purged once.
ALTER TABLE dossiers ADD COLUMN purged_at TEXT;
