-- SSH key pairs the service generated for bastions. Until a source claims one, its private key
-- is sealed here (its associated data names this key, not a source); claiming moves it into
-- source_secrets in the same transaction and leaves only the public half, shown with the
-- source. An unclaimed key expires; a key is claimed once.
CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    source_id   TEXT REFERENCES sources (id) ON DELETE CASCADE,
    claimed_at  BIGINT,
    key_id      TEXT,
    nonce       BYTEA,
    ciphertext  BYTEA,
    CHECK ((source_id IS NULL) = (ciphertext IS NOT NULL AND nonce IS NOT NULL AND key_id IS NOT NULL))
);
-- At most one generated key per source: the one its ssh_private_key secret holds.
CREATE UNIQUE INDEX ssh_keys_source ON ssh_keys (source_id);
