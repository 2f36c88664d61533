-- Time-based events: the daemon's evaluations of stalled dossiers and approaching
-- deadlines are runs of their own (kind 'evaluation', connector ''), so that their
-- events and alerts are traced like an import's. Each event is raised once: its
-- external_id names the stay or the deadline reminder it is about.
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'import';
ALTER TABLE runs ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN deadline INTEGER NOT NULL DEFAULT 0;
