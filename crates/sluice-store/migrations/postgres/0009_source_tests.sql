-- The outcome of the last Test Connection of a saved source: when, by whom, passed or not, and
-- the first failing check with its one-line summary. An edit of the source's settings clears it
-- (the test no longer describes them).
ALTER TABLE sources
    ADD COLUMN last_test_at BIGINT,
    ADD COLUMN last_test_by TEXT,
    ADD COLUMN last_test_ok BOOLEAN,
    ADD COLUMN last_test_failed TEXT,
    ADD COLUMN last_test_message TEXT;
