-- The central event store on ClickHouse (docs/scaling.md): what collectors forward
-- (collect/forward.c, INSERT ... FORMAT JSONEachRow) and what `abacus analyze --store
-- clickhouse://...` aggregates (analyze/clickhouse.c). Applied by `abacus migrate --clickhouse
-- URL`, which records each applied file in schema_migrations; statements are idempotent (IF NOT
-- EXISTS) so a run interrupted between a statement and its record is safe to repeat.
--
-- Engine: ReplacingMergeTree, so that a row stored twice (a forwarded batch re-sent after a
-- timeout whose first attempt did land) collapses into one when its part is merged: the sorting
-- key ends with the event id, and a re-sent row is identical to the first. Merges are eventual,
-- so the analysis also deduplicates on the event id when it reads (GROUP BY id).
-- Sorting key: the analysis reads exposures of one experiment and metric events of one or two
-- metric names, each grouped by unit: (type, experiment, metric, unit, id) makes both reads
-- range scans. Partitions: one per UTC day of the event time (ms / 86,400,000), so old days can
-- be dropped whole (ALTER TABLE events DROP PARTITION d).
CREATE TABLE IF NOT EXISTS events (
    id          String,                                -- client-generated event id
    type        Enum8('exposure' = 1, 'metric' = 2),
    ts          Int64,                                 -- ms since epoch, skew-corrected
    client_ts   Int64,                                 -- ms, as the client sent it
    sent_at     Nullable(Int64),                       -- ms, client clock at send
    received_at Int64,                                 -- ms, the collector's clock
    unit        String,
    experiment  String,                                -- exposures; '' for metric events
    variant     String,                                -- exposures; ''
    metric      String,                                -- metric events; ''
    value       Float64,                               -- metric events; 0 for exposures
    attributes  String,                                -- JSON object text or ''
    source      Enum8('events' = 1, 'segment' = 2),
    origin      String,                                -- the forwarding collector's outbox id
    seq         UInt64                                 -- the event's seq in that outbox
) ENGINE = ReplacingMergeTree
PARTITION BY intDiv(ts, 86400000)
ORDER BY (type, experiment, metric, unit, id);
