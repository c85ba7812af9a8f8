-- The outbox position of a collector that forwards to ClickHouse (collect/forward.c,
-- docs/scaling.md). events stays the outbox: rows leave in seq order, and the position survives
-- restarts here. One row per target URL, so pointing a collector at another ClickHouse ships
-- what the outbox still holds from the start.
CREATE TABLE forward_state (
    target       TEXT PRIMARY KEY,    -- clickhouse://HOST:PORT/DB as given to --forward
    origin       TEXT NOT NULL,       -- random id of this outbox, stored with each forwarded row
    position     INTEGER NOT NULL,    -- seq of the last event ClickHouse acknowledged
    inflight_end INTEGER NOT NULL     -- last seq of the batch being sent (= position when none):
                                      -- after a crash the batch (position, inflight_end] is
                                      -- re-sent with the same rows and the same query id
);
