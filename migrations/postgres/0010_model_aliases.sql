-- A workspace's model aliases (postgres): the name nodes call through `models`, bound to
-- provider installs and models in the order to try them (JSON: [{provider, model,
-- config}]). The platform core checks and audits every binding.

CREATE TABLE model_aliases (
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    targets TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
