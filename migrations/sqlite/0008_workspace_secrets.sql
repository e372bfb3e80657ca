-- Workspace secrets in server mode (sqlite): values sealed with AES-256-GCM (bound to
-- workspace and name) by the server's HYYVE_SECRET_KEY, so every process with that key
-- and this database reads the same secrets. Never stored in clear.

CREATE TABLE workspace_secrets (
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sealed TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
