-- The discovery schedule, shared by every instance on this store: one row per source saying when
-- it is due next and which instance holds it. An instance claims due rows in one write
-- transaction (BEGIN IMMEDIATE) and leases them until lease_expires_at (renewed while the run
-- lasts); a lease left to expire (its instance died) is taken over, and its run recorded as failed.
CREATE TABLE discovery_schedule (
    source_id        TEXT PRIMARY KEY REFERENCES sources (id) ON DELETE CASCADE,
    -- NULL: the service's default interval.
    interval_ms      INTEGER CHECK (interval_ms > 0),
    next_due_at      INTEGER NOT NULL,
    -- Failed runs in a row (the backoff's exponent); 0 after a success.
    failures         INTEGER NOT NULL DEFAULT 0,
    -- A run asked for on demand, queued until an instance claims the source.
    requested_run    INTEGER,
    leased_by        TEXT,
    lease_expires_at INTEGER,
    -- The run the lease holder is doing.
    run_id           INTEGER,
    last_run_id      INTEGER
) STRICT;
CREATE INDEX discovery_schedule_due ON discovery_schedule (next_due_at);

-- queued (asked for, not claimed yet), running, finished (outcome says how).
ALTER TABLE discovery_runs ADD COLUMN state TEXT NOT NULL DEFAULT 'running'
    CHECK (state IN ('queued', 'running', 'finished'));
-- schedule, refresh, or NULL for a run started outside the scheduler.
ALTER TABLE discovery_runs ADD COLUMN reason TEXT;
ALTER TABLE discovery_runs ADD COLUMN instance TEXT;
ALTER TABLE discovery_runs ADD COLUMN changed INTEGER;
ALTER TABLE discovery_runs ADD COLUMN relations INTEGER;
UPDATE discovery_runs SET state = 'finished' WHERE finished_at IS NOT NULL;
