-- Installs, workflows with immutable versions, durable runs and metering (sqlite).
-- Times are Unix milliseconds; JSON is stored as text.

-- A registry plugin installed in a workspace: pinned to one component digest, with the
-- grant computed at install from the platform, organization and workspace layers.
CREATE TABLE installs (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    accepted TEXT NOT NULL,
    grant_json TEXT NOT NULL,
    installed_by TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, plugin_id)
);

-- An organization's policy (the `org.toml` layer of the CLI), as JSON.
CREATE TABLE org_policies (
    org_id TEXT PRIMARY KEY REFERENCES tenant_orgs (id),
    policy TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE workflows (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX workflows_workspace ON workflows (workspace_id, created_at);

-- Versions are written once and never changed: a run names the version it ran.
CREATE TABLE workflow_versions (
    workflow_id TEXT NOT NULL REFERENCES workflows (id),
    version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

-- `executions` counts pickups by a worker: above 1 the run resumed after a crash.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    org_id TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    workflow_version BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('queued', 'running', 'succeeded', 'failed', 'dead_lettered', 'cancelled')),
    input TEXT NOT NULL,
    executions BIGINT NOT NULL,
    error TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX runs_workspace ON runs (workspace_id, created_at);
CREATE INDEX runs_open ON runs (status) WHERE status IN ('queued', 'running');

-- Each node's final report (status, outputs, error, metering) as JSON.
CREATE TABLE run_nodes (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (run_id, node_id)
);

-- One row per invocation attempt. The key (run, node, attempt) is the idempotency key:
-- a record written twice (a retry of the write, a crash and resume) counts once.
CREATE TABLE metering_records (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    day TEXT NOT NULL,
    fuel BIGINT NOT NULL,
    wall_time_us BIGINT NOT NULL,
    peak_memory_bytes BIGINT NOT NULL,
    host_calls BIGINT NOT NULL,
    http_requests BIGINT NOT NULL,
    denials BIGINT NOT NULL,
    failure TEXT,
    record TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, node_id, attempt)
);
CREATE INDEX metering_workspace_day ON metering_records (workspace_id, day);
CREATE INDEX metering_org_day ON metering_records (org_id, day);
