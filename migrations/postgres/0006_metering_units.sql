-- Custom units a plugin reported (LLM tokens, images, ...), one row per invocation
-- attempt and unit, under the same idempotency key as its metering record: a record
-- written twice counts once. Usage and plan quotas aggregate them per day, plugin, unit.
CREATE TABLE metering_units (
    run_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    workspace_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    day TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    PRIMARY KEY (run_id, node_id, attempt, unit)
);
CREATE INDEX metering_units_workspace_day ON metering_units (workspace_id, day);
CREATE INDEX metering_units_org_day ON metering_units (org_id, day);
