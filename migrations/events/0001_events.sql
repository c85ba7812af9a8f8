-- The event database of a collector (collect/, docs/collector.md). Written by one writer
-- thread in group-committed transactions (WAL, synchronous=FULL).

-- Accepted events, in arrival order. seq is the rowid, so inserts append at the end of the
-- table's B-tree. Dedup does not use a UNIQUE index on the random client id (every insert would
-- dirty a random page of a tree as large as the table): it looks an id up by (client_ts, id_hash),
-- the event's own timestamp and a 64-bit hash of the id. Events arrive with recent timestamps, so
-- inserts into that index land in its last few pages, and a group commit dirties few pages at any
-- table size. The index is UNIQUE, so the insert itself finds a duplicate; the full id is then
-- compared, and a different id with the same (client_ts, hash) takes the next free hash value
-- (linear probing; docs/collector.md).
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,            -- client-generated event id, 1..200 bytes
    id_hash     INTEGER NOT NULL,         -- 64-bit hash of id (signed), + k after k collisions
    fingerprint INTEGER NOT NULL,         -- 64-bit hash of the payload: same id, other payload
    type        TEXT NOT NULL CHECK (type IN ('exposure', 'metric')),
    ts          INTEGER NOT NULL,         -- ms since epoch, corrected for client clock skew
    client_ts   INTEGER NOT NULL,         -- ms since epoch, as the client sent it
    sent_at     INTEGER,                  -- ms, the client's clock at send time, if given
    received_at INTEGER NOT NULL,         -- ms, server clock
    unit        TEXT NOT NULL,
    experiment  TEXT,                     -- exposures: experiment key
    variant     TEXT,                     -- exposures: variant key
    metric      TEXT,                     -- metric events: metric (event) name
    value       REAL,                     -- metric events: value (default 1)
    attributes  TEXT,                     -- JSON object or NULL
    source      TEXT NOT NULL CHECK (source IN ('events', 'segment'))
);
CREATE UNIQUE INDEX events_dedup ON events (client_ts, id_hash);

-- Events of acknowledged requests that failed validation: nothing is dropped silently.
CREATE TABLE rejected_events (
    seq           INTEGER PRIMARY KEY,
    received_at   INTEGER NOT NULL,       -- ms, server clock
    source        TEXT NOT NULL CHECK (source IN ('events', 'segment')),
    request_index INTEGER NOT NULL,       -- position of the event in its request
    code          TEXT NOT NULL,          -- e.g. missing_field, unknown_variant (docs/collector.md)
    field         TEXT NOT NULL,          -- e.g. events[3].unit
    message       TEXT NOT NULL,
    raw           BLOB NOT NULL           -- the event's bytes as received
);
