-- Snapshot format 1: what an assign node (and a regional collector) needs, and nothing else.
-- A snapshot file is written once by the control plane and never modified; PRAGMA user_version
-- holds the format version. Documented in docs/snapshot.md. Times are ms since the Unix epoch.

-- Exactly one row.
CREATE TABLE meta (
    format_version   INTEGER NOT NULL,             -- = PRAGMA user_version
    snapshot_version INTEGER NOT NULL CHECK (snapshot_version > 0), -- strictly increasing
    created_at       INTEGER NOT NULL
) STRICT;

-- Running and paused experiments (drafts, stopped and archived ones are not published).
CREATE TABLE experiments (
    key                TEXT PRIMARY KEY,
    status             TEXT NOT NULL CHECK (status IN ('running', 'paused')),
    hash_attribute     TEXT NOT NULL,
    fallback_attribute TEXT,
    hash_version       INTEGER NOT NULL,
    seed               TEXT NOT NULL,
    coverage           REAL NOT NULL,
    condition_json     TEXT,                        -- GrowthBook condition, NULL = everyone
    layer_key          TEXT,                        -- namespace, NULL = none
    layer_start        REAL,
    layer_end          REAL,
    phase              INTEGER NOT NULL,
    version            INTEGER NOT NULL             -- the experiment's config version
) STRICT;

CREATE TABLE variants (
    experiment_key TEXT NOT NULL REFERENCES experiments(key),
    position       INTEGER NOT NULL,                -- variation id, 0 = control
    key            TEXT NOT NULL,
    weight         REAL NOT NULL,
    payload_json   TEXT NOT NULL,
    PRIMARY KEY (experiment_key, position)
) STRICT;

CREATE TABLE overrides (
    experiment_key TEXT NOT NULL REFERENCES experiments(key),
    unit           TEXT NOT NULL,                   -- value of the hash attribute
    variant_key    TEXT NOT NULL,
    PRIMARY KEY (experiment_key, unit)
) STRICT;

-- SDK client keys (for /api/features, /api/eval) and ingest keys (for collect), hashed.
CREATE TABLE api_keys (
    kind     TEXT NOT NULL CHECK (kind IN ('client', 'ingest')),
    key_hash TEXT NOT NULL PRIMARY KEY              -- hex SHA-256 of the key
) STRICT;
