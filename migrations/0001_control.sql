-- Control schema: what experimenters configure (experiments, variants, overrides, layers,
-- metrics), what the control plane publishes (snapshots), and who may do what (users, API keys),
-- with every change in the audit log. Times are INTEGER ms since the Unix epoch (UTC); JSON
-- columns hold text that jansson wrote. STRICT tables, so a wrong type is an error, not a cast.

CREATE TABLE layers (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE experiments (
    id                  INTEGER PRIMARY KEY,
    key                 TEXT NOT NULL UNIQUE,
    name                TEXT NOT NULL DEFAULT '',
    description         TEXT NOT NULL DEFAULT '',
    hash_attribute      TEXT NOT NULL DEFAULT 'id',
    fallback_attribute  TEXT,
    hash_version        INTEGER NOT NULL DEFAULT 2 CHECK (hash_version IN (1, 2)),
    seed                TEXT NOT NULL,
    coverage            REAL NOT NULL DEFAULT 1.0 CHECK (coverage >= 0.0 AND coverage <= 1.0),
    condition_json      TEXT,                         -- GrowthBook condition, NULL = everyone
    layer_id            INTEGER REFERENCES layers(id),
    layer_start         REAL,                         -- [layer_start, layer_end) within [0, 1)
    layer_end           REAL,
    planned_sample_size INTEGER CHECK (planned_sample_size IS NULL OR planned_sample_size > 0),
    status              TEXT NOT NULL DEFAULT 'draft'
                        CHECK (status IN ('draft', 'running', 'paused', 'stopped', 'archived')),
    version             INTEGER NOT NULL DEFAULT 1,   -- optimistic concurrency, +1 per change
    phase               INTEGER NOT NULL DEFAULT 1,   -- current phase (experiment_phases)
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK ((layer_id IS NULL AND layer_start IS NULL AND layer_end IS NULL) OR
           (layer_id IS NOT NULL AND layer_start >= 0.0 AND layer_start < layer_end
            AND layer_end <= 1.0))
) STRICT;

CREATE INDEX experiments_status ON experiments(status);
CREATE INDEX experiments_layer ON experiments(layer_id) WHERE layer_id IS NOT NULL;

-- A phase is a period with fixed weights and seed; the analysis reads only the current one.
CREATE TABLE experiment_phases (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    phase         INTEGER NOT NULL,
    seed          TEXT NOT NULL,
    weights_json  TEXT NOT NULL,                      -- [0.5, 0.5], in variant order
    started_at    INTEGER,                            -- NULL until the experiment starts
    ended_at      INTEGER,
    PRIMARY KEY (experiment_id, phase)
) STRICT;

CREATE TABLE variants (
    id            INTEGER PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,                   -- 0-based variation id
    key           TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    weight        REAL NOT NULL CHECK (weight >= 0.0 AND weight <= 1.0),
    payload_json  TEXT NOT NULL DEFAULT '{}',
    UNIQUE (experiment_id, key),
    UNIQUE (experiment_id, position)
) STRICT;

-- Forced variant for one unit (QA, internal users).
CREATE TABLE overrides (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    unit          TEXT NOT NULL,
    variant_key   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, unit),
    FOREIGN KEY (experiment_id, variant_key) REFERENCES variants(experiment_id, key)
        ON UPDATE CASCADE ON DELETE CASCADE
) STRICT;

CREATE TABLE metrics (
    id                      INTEGER PRIMARY KEY,
    key                     TEXT NOT NULL UNIQUE,
    name                    TEXT NOT NULL DEFAULT '',
    description             TEXT NOT NULL DEFAULT '',
    type                    TEXT NOT NULL CHECK (type IN ('binomial', 'mean', 'ratio')),
    event                   TEXT NOT NULL,            -- numerator event name
    denominator_event       TEXT,                     -- ratio metrics only
    direction               TEXT NOT NULL DEFAULT 'increase'
                            CHECK (direction IN ('increase', 'decrease')),
    conversion_window_hours REAL CHECK (conversion_window_hours IS NULL OR
                                        conversion_window_hours > 0),
    archived                INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    CHECK ((type = 'ratio') = (denominator_event IS NOT NULL))
) STRICT;

CREATE TABLE experiment_metrics (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    metric_id     INTEGER NOT NULL REFERENCES metrics(id),
    role          TEXT NOT NULL CHECK (role IN ('goal', 'guardrail', 'secondary')),
    PRIMARY KEY (experiment_id, metric_id)
) STRICT;

-- Published snapshot files (immutable once written); version strictly increases.
CREATE TABLE snapshots (
    version      INTEGER PRIMARY KEY,
    sha256       TEXT NOT NULL,                       -- hex of the file's SHA-256
    size         INTEGER NOT NULL,                    -- bytes
    path         TEXT NOT NULL,                       -- relative to the data dir
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    summary_json TEXT NOT NULL DEFAULT '{}'           -- what changed since the previous one
) STRICT;

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,                      -- argon2id, libsodium's encoded form
    role          TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
) STRICT;

-- Admin API keys, SDK client keys and ingest keys. Only a hash of the secret is stored; prefix
-- is the first characters of the key, kept to tell keys apart in the UI.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('admin', 'client', 'ingest')),
    name         TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,               -- hex SHA-256 of the whole key
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- Every change to the configuration: who, when, what, and the entity before and after.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,                        -- "user:a@b.c", "key:ab_12ab", "system"
    action      TEXT NOT NULL,                        -- "experiment.update", "snapshot.publish"
    entity_type TEXT NOT NULL,
    entity_key  TEXT NOT NULL,
    before_json TEXT,                                 -- NULL for creations
    after_json  TEXT                                  -- NULL for deletions
) STRICT;

CREATE INDEX audit_log_entity ON audit_log(entity_type, entity_key, at);
CREATE INDEX audit_log_at ON audit_log(at);
