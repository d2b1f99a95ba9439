-- What changed in a source's catalog from one stored snapshot to the next: the catalog diff as
-- JSON and how many entries of each kind it holds. Snapshot ids are kept as plain numbers:
-- retention removes old snapshots while the changes between newer ones stay.
CREATE TABLE catalog_changes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    from_snapshot INTEGER NOT NULL,
    to_snapshot   INTEGER NOT NULL,
    changed_at    INTEGER NOT NULL,
    diff          TEXT NOT NULL CHECK (json_valid(diff)),
    counts        TEXT NOT NULL CHECK (json_valid(counts))
) STRICT;
CREATE INDEX catalog_changes_source ON catalog_changes (source_id, id);
CREATE INDEX catalog_changes_at ON catalog_changes (changed_at);
CREATE INDEX catalog_snapshots_at ON catalog_snapshots (discovered_at);
