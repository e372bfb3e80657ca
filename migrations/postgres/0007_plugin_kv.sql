-- Plugin KV in server mode (postgres): values scoped by workspace and install, shared by every
-- process on this database and kept across restarts. Each scope's bytes (keys + values)
-- are kept beside it, so a write checks the install's quota without summing the scope.

CREATE TABLE kv_scopes (
    workspace_id TEXT NOT NULL,
    install TEXT NOT NULL,
    used_bytes BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, install)
);

CREATE TABLE kv_entries (
    workspace_id TEXT NOT NULL,
    install TEXT NOT NULL,
    entry_key TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (workspace_id, install, entry_key),
    FOREIGN KEY (workspace_id, install) REFERENCES kv_scopes (workspace_id, install)
);
