-- Consecutive scheduled runs that found the catalog unchanged share one record: the first run's
-- row keeps its own times and counts the runs it stands for, with the last one's times and
-- instance. A run that failed, changed the catalog or was asked for keeps a row of its own, so
-- the table grows only when something happens.
ALTER TABLE discovery_runs ADD COLUMN runs INTEGER NOT NULL DEFAULT 1 CHECK (runs >= 1);
ALTER TABLE discovery_runs ADD COLUMN last_started_at INTEGER;
ALTER TABLE discovery_runs ADD COLUMN last_finished_at INTEGER;
ALTER TABLE discovery_runs ADD COLUMN last_instance TEXT;
