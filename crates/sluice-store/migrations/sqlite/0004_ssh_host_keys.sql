-- Host keys a source's bastion presented and Sluice did not trust (recorded by Test
-- Connection), per bastion address, so an admin can approve one by its fingerprint: the key
-- itself is what the server saw, never what a request says. At most one per source is the
-- approved one, with who approved it and when.
CREATE TABLE ssh_host_keys (
    source_id     TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    bastion       TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    algorithm     TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    approved_by   TEXT,
    approved_at   INTEGER,
    PRIMARY KEY (source_id, bastion, fingerprint),
    CHECK ((approved_by IS NULL) = (approved_at IS NULL))
) STRICT;
CREATE UNIQUE INDEX ssh_host_keys_approved ON ssh_host_keys (source_id) WHERE approved_at IS NOT NULL;
