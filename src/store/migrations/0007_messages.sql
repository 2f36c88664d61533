-- Messages exchanged on the source (Démarches Simplifiées' messagerie) join the
-- timeline as events of kind 'message' (field: the sender, new_value: the text).
-- Their source id makes each one stored once, however often the dossier comes back.
ALTER TABLE events ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX events_external ON events (dossier_id, external_id) WHERE external_id IS NOT NULL;
ALTER TABLE runs ADD COLUMN messages INTEGER NOT NULL DEFAULT 0;
-- A step change the source already e-mailed the applicant about (one of DS's
-- automatic messages at that time): rules may leave it to the source.
ALTER TABLE events ADD COLUMN notified_by_source INTEGER NOT NULL DEFAULT 0;
