-- A sharded ClickHouse cluster (docs/scaling.md): run on every server of the cluster instead of
-- migrations/clickhouse/0001_events.sql, with {db} replaced by the database of the clickhouse://
-- URL and {cluster} by the cluster's name in the servers' <remote_servers> configuration (one
-- statement at a time; not applied by `abacus migrate`, which sets up one server). With
-- ZooKeeper configured, `ON CLUSTER {cluster}` after each table name runs a statement on every
-- server at once. Collectors and the analysis use the same URL as with one server, because the
-- Distributed table carries the name `events`; tests/integration/it_clickhouse.c
-- (test_two_shards_distributed) applies this file to two servers.
--
-- events_local holds each shard's rows (the same columns and keys as the single-server table;
-- on replicated shards use ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/events',
-- '{replica}'), whose insert_deduplicate also drops a re-sent identical block at insert time).
-- events routes each inserted row to a shard by a hash of its unit, so all of a unit's events
-- live on one shard: every per-unit step of the analysis (first exposure, dedup by id within the
-- unit, per-unit sums) is local to a shard.
CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.events_local (
    id          String,
    type        Enum8('exposure' = 1, 'metric' = 2),
    ts          Int64,
    client_ts   Int64,
    sent_at     Nullable(Int64),
    received_at Int64,
    unit        String,
    experiment  String,
    variant     String,
    metric      String,
    value       Float64,
    attributes  String,
    source      Enum8('events' = 1, 'segment' = 2),
    origin      String,
    seq         UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY intDiv(ts, 86400000)
ORDER BY (type, experiment, metric, unit, id);

CREATE TABLE IF NOT EXISTS {db}.events AS {db}.events_local
ENGINE = Distributed({cluster}, {db}, events_local, sipHash64(unit));
