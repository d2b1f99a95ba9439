-- The outcome of the last Test Connection of a saved source: when, by whom, passed or not, and
-- the first failing check with its one-line summary. An edit of the source's settings clears it
-- (the test no longer describes them).
ALTER TABLE sources ADD COLUMN last_test_at INTEGER;
ALTER TABLE sources ADD COLUMN last_test_by TEXT;
ALTER TABLE sources ADD COLUMN last_test_ok INTEGER CHECK (last_test_ok IN (0, 1));
ALTER TABLE sources ADD COLUMN last_test_failed TEXT;
ALTER TABLE sources ADD COLUMN last_test_message TEXT;
