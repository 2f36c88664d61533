-- Time-based events: the daemon's evaluations of stalled dossiers, approaching
-- deadlines and periodic reviews are runs of their own (kind 'evaluation',
-- connector ''), so that their events and alerts are traced like an import's.
-- Each event is raised once: its external_id names the stay, the deadline
-- reminder or the review it is about.
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'import';
ALTER TABLE runs ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN deadline INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
