-- What an install's grant was computed from (sqlite): the manifest's digest and that of the
-- policy inputs (platform caps, organization policy, what the workspace accepted). The
-- platform core keeps the same record in both modes; local mode reuses an install while
-- both are unchanged. Installs made before this migration have neither ('').

ALTER TABLE installs ADD COLUMN manifest_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE installs ADD COLUMN policy_digest TEXT NOT NULL DEFAULT '';
