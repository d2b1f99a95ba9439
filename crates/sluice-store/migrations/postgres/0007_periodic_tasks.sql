-- Service-wide chores that one instance does per period (the history's retention): the instance
-- that moves `next_due_at` forward first does it; the others see it not due.
CREATE TABLE periodic_tasks (
    name        TEXT PRIMARY KEY,
    next_due_at BIGINT NOT NULL,
    claimed_by  TEXT,
    claimed_at  BIGINT
);
