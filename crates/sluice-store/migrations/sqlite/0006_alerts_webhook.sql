-- A source's alerts: raised by a discovery run (access or schema usage lost, discovery failing
-- again and again) and cleared by a later run that finds it resolved. Cleared alerts stay as
-- the source's alert history. `subject` names what the alert is about (a relation, a schema,
-- or the source itself); a source has at most one open alert per kind and subject.
CREATE TABLE source_alerts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('lost_access', 'lost_usage', 'discovery_failing')),
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL CHECK (json_valid(details)),
    raised_at  INTEGER NOT NULL,
    cleared_at INTEGER
) STRICT;
CREATE UNIQUE INDEX source_alerts_open ON source_alerts (source_id, kind, subject) WHERE cleared_at IS NULL;
CREATE INDEX source_alerts_source ON source_alerts (source_id, id);

-- The outgoing webhook an admin configured: at most one; its signing secret sealed like a
-- source's secrets.
CREATE TABLE webhook (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    url        TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Notifications for the webhook, written in the transaction that raised or cleared the alert
-- and delivered from here: a delivery is leased to one instance at a time, retried with a
-- backoff until the receiver answers 2xx, and then marked delivered.
CREATE TABLE webhook_outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL UNIQUE,
    body             TEXT NOT NULL CHECK (json_valid(body)),
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    leased_by        TEXT,
    lease_expires_at INTEGER,
    delivered_at     INTEGER,
    last_error       TEXT
) STRICT;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL;
