-- Sluice's store on SQLite. Times are milliseconds since the Unix epoch, from the database clock.

-- The sealed check value that tells a wrong master key from the right one.
CREATE TABLE store_meta (
    name       TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL
) STRICT;

CREATE TABLE sources (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    settings            TEXT NOT NULL CHECK (json_valid(settings)),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    password_updated_at INTEGER
) STRICT;

CREATE TABLE source_secrets (
    source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    field      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (source_id, field)
) STRICT;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'analyst')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;

-- A browser session: the SHA-256 of the cookie's secret and of the CSRF secret, never either.
CREATE TABLE sessions (
    id_hash    BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_hash  BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    public_id    TEXT PRIMARY KEY,
    secret_hash  BLOB NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'analyst', 'refresh')),
    source_id    TEXT REFERENCES sources (id) ON DELETE CASCADE,
    created_by   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;

CREATE TABLE setup_tokens (
    hash       BLOB PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE TABLE catalog_snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    content_hash  TEXT NOT NULL,
    compression   TEXT NOT NULL CHECK (compression IN ('zstd')),
    content       BLOB NOT NULL,
    discovered_at INTEGER NOT NULL
) STRICT;
CREATE INDEX catalog_snapshots_source ON catalog_snapshots (source_id, id);

CREATE TABLE discovery_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id   TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT CHECK (outcome IN ('ok', 'failed', 'cancelled')),
    stage       TEXT,
    message     TEXT
) STRICT;
CREATE INDEX discovery_runs_source ON discovery_runs (source_id, id);

-- Append-only: entries outlive the sources and users they name, so no foreign keys.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    source_id   TEXT,
    detail      TEXT NOT NULL CHECK (json_valid(detail)),
    sql         TEXT,
    finished_at INTEGER,
    duration_ms INTEGER,
    rows        INTEGER,
    bytes       INTEGER,
    outcome     TEXT CHECK (outcome IN ('ok', 'failed', 'cancelled', 'truncated')),
    error       TEXT
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_source ON audit_log (source_id, id);
CREATE INDEX audit_log_kind ON audit_log (kind, id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- The one update allowed: a query's entry completed once, its recorded facts unchanged.
CREATE TRIGGER audit_log_complete_once BEFORE UPDATE ON audit_log
WHEN OLD.finished_at IS NOT NULL
  OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.actor IS NOT OLD.actor
  OR NEW.kind IS NOT OLD.kind OR NEW.source_id IS NOT OLD.source_id
  OR NEW.detail IS NOT OLD.detail OR NEW.sql IS NOT OLD.sql
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
