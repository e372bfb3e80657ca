-- The server's audit log: one hash chain per workspace (see host/server/src/audit.rs).
-- `entry` is the whole entry as JSON, exactly as hashed, so the chain can be re-checked;
-- the other columns are copies for filtering and ordering.
CREATE TABLE audit_log (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    seq BIGINT NOT NULL,
    action TEXT NOT NULL,
    at BIGINT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX audit_log_action ON audit_log (workspace_id, action, seq);
