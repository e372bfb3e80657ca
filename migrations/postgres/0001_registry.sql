-- Registry metadata (postgres). Times are Unix milliseconds; JSON columns are text so the
-- same queries run on SQLite and PostgreSQL. Blobs (components, icons) live in the
-- object store, addressed by their sha256.

-- Creator accounts: they sign packages and are paid for metered use.
CREATE TABLE publishers (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- A namespace belongs to one publisher; nobody else publishes under it.
CREATE TABLE namespaces (
    namespace TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers (name)
);

-- Organizations co-sign versions they vetted.
CREATE TABLE organizations (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- Public keys of publishers and organizations; added by an admin or by a signature of
-- an existing key of the same owner (rotation).
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('publisher', 'organization')),
    owner TEXT NOT NULL,
    public_key TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX signing_keys_owner ON signing_keys (owner_kind, owner);

CREATE TABLE listings (
    plugin_id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL REFERENCES publishers (name),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- ',a,b,' so one category matches with LIKE '%,a,%'
    categories TEXT NOT NULL,
    -- lowercased id, title, description and categories, for text search
    search_text TEXT NOT NULL,
    readme TEXT,
    icon_digest TEXT,
    pricing TEXT NOT NULL,
    latest_version TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX listings_kind ON listings (kind);
CREATE INDEX listings_publisher ON listings (publisher);

CREATE TABLE versions (
    plugin_id TEXT NOT NULL REFERENCES listings (plugin_id),
    version TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    component_size BIGINT NOT NULL,
    manifest_digest TEXT NOT NULL,
    manifest_text TEXT NOT NULL,
    -- package.json as published: what the signatures cover
    header TEXT NOT NULL,
    signatures TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    yanked_at BIGINT,
    yank_reason TEXT,
    PRIMARY KEY (plugin_id, version)
);

-- An organization's signature over a version it vetted.
CREATE TABLE cosignatures (
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    organization TEXT NOT NULL REFERENCES organizations (name),
    key_id TEXT NOT NULL REFERENCES signing_keys (key_id),
    signature TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, version, organization, key_id),
    FOREIGN KEY (plugin_id, version) REFERENCES versions (plugin_id, version)
);

-- A workspace's request to install a third-party version, in its organization's queue.
CREATE TABLE vetting_requests (
    id BIGSERIAL PRIMARY KEY,
    organization TEXT NOT NULL,
    workspace TEXT NOT NULL,
    plugin_id TEXT NOT NULL,
    version TEXT NOT NULL,
    component_digest TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    base_version TEXT,
    diff TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    reason TEXT,
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    requested_at BIGINT NOT NULL,
    decided_at BIGINT,
    FOREIGN KEY (plugin_id, version) REFERENCES versions (plugin_id, version)
);
CREATE INDEX vetting_by_org ON vetting_requests (organization, status);

-- Metered use of marketplace plugins, per workspace and day (UTC, YYYY-MM-DD).
CREATE TABLE usage_daily (
    plugin_id TEXT NOT NULL,
    workspace TEXT NOT NULL,
    day TEXT NOT NULL,
    invocations BIGINT NOT NULL,
    PRIMARY KEY (plugin_id, workspace, day)
);

-- One computed payout per publisher and period (YYYY-MM).
CREATE TABLE payouts (
    publisher TEXT NOT NULL REFERENCES publishers (name),
    period TEXT NOT NULL,
    gross_micros BIGINT NOT NULL,
    fee_micros BIGINT NOT NULL,
    net_micros BIGINT NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (publisher, period)
);
