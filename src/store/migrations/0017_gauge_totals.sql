-- Running totals behind /metrics (`store/gauges.rs`), so that a scrape reads a
-- few rows whatever the size of the history, where it used to read every run
-- and every alert ever sent (issue 17, item 16). Triggers keep them in the same
-- transaction as the change they count, whichever statement makes it (an
-- import, a delivery, a cancellation, a retry, a purge). This migration fills
-- them once from the existing rows.
--
-- A migration that rebuilds `runs` or `alerts` (SQLite's way to change a
-- constraint) drops these triggers with the old table: it must create them
-- again. The store's tests compare the totals with a full scan after every
-- migration, so a lost trigger does not go unnoticed.

-- Import runs by connector (kind 'import'; evaluations are not imports).
CREATE TABLE import_totals (
    connector    TEXT    PRIMARY KEY,
    runs         INTEGER NOT NULL DEFAULT 0,   -- import runs; the connector shows while > 0
    applied      INTEGER NOT NULL DEFAULT 0,
    refused      INTEGER NOT NULL DEFAULT 0,
    last_success TEXT,                         -- the latest finished_at of an applied or unchanged run
    rows         INTEGER NOT NULL DEFAULT 0,
    events       INTEGER NOT NULL DEFAULT 0,   -- created + step_changed + field_changed + disappeared + reappeared + messages
    rejected     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO import_totals (connector, runs, applied, refused, last_success, rows, events, rejected)
SELECT connector, count(*), sum(status = 'applied'), sum(status = 'refused'),
       max(CASE WHEN status IN ('applied', 'unchanged') THEN finished_at END),
       sum(rows),
       sum(created + step_changed + field_changed + disappeared + reappeared + messages),
       sum(rejected)
FROM runs WHERE kind = 'import' GROUP BY connector;

CREATE TRIGGER import_totals_insert AFTER INSERT ON runs WHEN new.kind = 'import'
BEGIN
    INSERT OR IGNORE INTO import_totals (connector) VALUES (new.connector);
    UPDATE import_totals SET
        runs = runs + 1,
        applied = applied + (new.status = 'applied'),
        refused = refused + (new.status = 'refused'),
        last_success = CASE
            WHEN new.status IN ('applied', 'unchanged')
                 AND (last_success IS NULL OR new.finished_at > last_success)
            THEN new.finished_at ELSE last_success END,
        rows = rows + new.rows,
        events = events + new.created + new.step_changed + new.field_changed
                        + new.disappeared + new.reappeared + new.messages,
        rejected = rejected + new.rejected
    WHERE connector = new.connector;
END;

-- An import writes its run first, then its final counts and end (ImportTx::finish):
-- the old row is taken out, the new one put in. The latest success is looked up
-- again only when the old row held it and the new one does not keep it.
CREATE TRIGGER import_totals_update
AFTER UPDATE OF connector, kind, status, finished_at, rows, created, step_changed, field_changed,
                disappeared, reappeared, messages, rejected ON runs
WHEN old.kind = 'import' OR new.kind = 'import'
BEGIN
    UPDATE import_totals SET
        runs = runs - 1,
        applied = applied - (old.status = 'applied'),
        refused = refused - (old.status = 'refused'),
        last_success = CASE
            WHEN old.status NOT IN ('applied', 'unchanged') OR old.finished_at < last_success
            THEN last_success
            WHEN new.kind = 'import' AND new.connector = old.connector
                 AND new.status IN ('applied', 'unchanged') AND new.finished_at >= old.finished_at
            THEN last_success
            ELSE (SELECT max(finished_at) FROM runs
                  WHERE connector = old.connector AND kind = 'import'
                    AND status IN ('applied', 'unchanged') AND id <> old.id) END,
        rows = rows - old.rows,
        events = events - (old.created + old.step_changed + old.field_changed
                           + old.disappeared + old.reappeared + old.messages),
        rejected = rejected - old.rejected
    WHERE connector = old.connector AND old.kind = 'import';
    INSERT OR IGNORE INTO import_totals (connector) SELECT new.connector WHERE new.kind = 'import';
    UPDATE import_totals SET
        runs = runs + 1,
        applied = applied + (new.status = 'applied'),
        refused = refused + (new.status = 'refused'),
        last_success = CASE
            WHEN new.status IN ('applied', 'unchanged')
                 AND (last_success IS NULL OR new.finished_at > last_success)
            THEN new.finished_at ELSE last_success END,
        rows = rows + new.rows,
        events = events + new.created + new.step_changed + new.field_changed
                        + new.disappeared + new.reappeared + new.messages,
        rejected = rejected + new.rejected
    WHERE connector = new.connector AND new.kind = 'import';
END;

CREATE TRIGGER import_totals_delete AFTER DELETE ON runs WHEN old.kind = 'import'
BEGIN
    UPDATE import_totals SET
        runs = runs - 1,
        applied = applied - (old.status = 'applied'),
        refused = refused - (old.status = 'refused'),
        last_success = CASE
            WHEN old.status NOT IN ('applied', 'unchanged') OR old.finished_at < last_success
            THEN last_success
            ELSE (SELECT max(finished_at) FROM runs
                  WHERE connector = old.connector AND kind = 'import'
                    AND status IN ('applied', 'unchanged')) END,
        rows = rows - old.rows,
        events = events - (old.created + old.step_changed + old.field_changed
                           + old.disappeared + old.reappeared + old.messages),
        rejected = rejected - old.rejected
    WHERE connector = old.connector;
END;

-- Alerts by status; a status shows while its count is above 0.
CREATE TABLE alert_totals (
    status TEXT    PRIMARY KEY,
    n      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO alert_totals (status, n) SELECT status, count(*) FROM alerts GROUP BY status;

CREATE TRIGGER alert_totals_insert AFTER INSERT ON alerts
BEGIN
    INSERT OR IGNORE INTO alert_totals (status) VALUES (new.status);
    UPDATE alert_totals SET n = n + 1 WHERE status = new.status;
END;

CREATE TRIGGER alert_totals_update AFTER UPDATE OF status ON alerts
WHEN old.status IS NOT new.status
BEGIN
    UPDATE alert_totals SET n = n - 1 WHERE status = old.status;
    INSERT OR IGNORE INTO alert_totals (status) VALUES (new.status);
    UPDATE alert_totals SET n = n + 1 WHERE status = new.status;
END;

CREATE TRIGGER alert_totals_delete AFTER DELETE ON alerts
BEGIN
    UPDATE alert_totals SET n = n - 1 WHERE status = old.status;
END;

-- The delivery latency of sent alerts (sent_at - created_at, in whole seconds,
-- 0 at least): per bound of the histogram (`gauges::LATENCY_BOUNDS`), how many
-- took that long or less; and the count and sum of all.
CREATE TABLE latency_buckets (
    bound INTEGER PRIMARY KEY,                 -- seconds
    n     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE latency_totals (
    id    INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    count INTEGER NOT NULL DEFAULT 0,
    sum   INTEGER NOT NULL DEFAULT 0
);

INSERT INTO latency_buckets (bound)
VALUES (60), (600), (3600), (14400), (43200), (86400), (259200), (604800);

WITH latency (seconds) AS MATERIALIZED (
    SELECT max(0, coalesce(unixepoch(sent_at) - unixepoch(created_at), 0))
    FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL
)
INSERT INTO latency_totals (id, count, sum)
SELECT 1, count(*), coalesce(sum(seconds), 0) FROM latency;

WITH latency (seconds) AS MATERIALIZED (
    SELECT max(0, coalesce(unixepoch(sent_at) - unixepoch(created_at), 0))
    FROM alerts WHERE status = 'sent' AND sent_at IS NOT NULL
),
by_bound (bound, n) AS MATERIALIZED (
    SELECT (SELECT min(bound) FROM latency_buckets WHERE bound >= seconds) AS b, count(*)
    FROM latency GROUP BY b
)
UPDATE latency_buckets SET n = (SELECT coalesce(sum(b.n), 0) FROM by_bound b
                                WHERE b.bound <= latency_buckets.bound);

CREATE TRIGGER latency_insert AFTER INSERT ON alerts
WHEN new.status = 'sent' AND new.sent_at IS NOT NULL
BEGIN
    UPDATE latency_buckets SET n = n + 1
    WHERE bound >= max(0, coalesce(unixepoch(new.sent_at) - unixepoch(new.created_at), 0));
    UPDATE latency_totals SET count = count + 1,
        sum = sum + max(0, coalesce(unixepoch(new.sent_at) - unixepoch(new.created_at), 0));
END;

CREATE TRIGGER latency_update AFTER UPDATE OF status, sent_at, created_at ON alerts
WHEN (old.status = 'sent' AND old.sent_at IS NOT NULL)
  OR (new.status = 'sent' AND new.sent_at IS NOT NULL)
BEGIN
    UPDATE latency_buckets SET n = n - 1
    WHERE old.status = 'sent' AND old.sent_at IS NOT NULL
      AND bound >= max(0, coalesce(unixepoch(old.sent_at) - unixepoch(old.created_at), 0));
    UPDATE latency_totals SET count = count - 1,
        sum = sum - max(0, coalesce(unixepoch(old.sent_at) - unixepoch(old.created_at), 0))
    WHERE old.status = 'sent' AND old.sent_at IS NOT NULL;
    UPDATE latency_buckets SET n = n + 1
    WHERE new.status = 'sent' AND new.sent_at IS NOT NULL
      AND bound >= max(0, coalesce(unixepoch(new.sent_at) - unixepoch(new.created_at), 0));
    UPDATE latency_totals SET count = count + 1,
        sum = sum + max(0, coalesce(unixepoch(new.sent_at) - unixepoch(new.created_at), 0))
    WHERE new.status = 'sent' AND new.sent_at IS NOT NULL;
END;

CREATE TRIGGER latency_delete AFTER DELETE ON alerts
WHEN old.status = 'sent' AND old.sent_at IS NOT NULL
BEGIN
    UPDATE latency_buckets SET n = n - 1
    WHERE bound >= max(0, coalesce(unixepoch(old.sent_at) - unixepoch(old.created_at), 0));
    UPDATE latency_totals SET count = count - 1,
        sum = sum - max(0, coalesce(unixepoch(old.sent_at) - unixepoch(old.created_at), 0));
END;
