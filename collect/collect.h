/*
 * The collector's one public header: a node that takes events over HTTP (POST /v1/events, POST
 * /v1/batch in Segment's format), validates them against the replicated snapshot (ingest keys,
 * experiment and variant keys) and stores them durably and deduplicated in a SQLite events
 * database before it answers (docs/design.md, "Events", docs/collector.md). main.c creates a node,
 * mounts it on an HTTP server and starts it; `abacus collect` and `abacus up` do.
 */
#ifndef ABACUS_COLLECT_H
#define ABACUS_COLLECT_H

#include <stddef.h>
#include <stdint.h>
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/err.h"
#include "abacus/follower.h"
#include "abacus/http.h"
#include "abacus/log.h"
#include "abacus/migrate.h"

/* The schema of the events database (generated from migrations/events/). */
extern const struct ab_migration collect_migrations[];
extern const size_t collect_migrations_count;

struct collect_node;

struct collect_node_config {
    const char *db_path;       /* events database; created and migrated on start */
    struct ab_follower_source snapshot; /* ingest keys and experiments: a snapshot file or a
                                           manifest URL followed as an assign node follows it;
                                           neither: the node is never ready and answers 503 */
    size_t queue_max_events;   /* events waiting for the writer before 503; 0 = 32768 */
    const char *forward_url;   /* clickhouse://HOST:PORT/DB to forward to, or NULL */
    size_t outbox_max_events;  /* forwarding: unforwarded events at which POSTs get 503;
                                  0 = 10,000,000 */
    int64_t retention_ms;      /* forwarding: forwarded events older than this are deleted
                                  locally; 0 keeps them */
    size_t forward_batch;      /* forwarding: events per INSERT; 0 = 10000 */
    const struct ab_log *log;
    const struct ab_clock *clock;
};

/* Creates a node; nothing is opened until collect_node_start. */
enum ab_err collect_node_new(const struct collect_node_config *cfg, struct collect_node **out,
                             struct ab_errinfo *ei);

/*
 * Registers POST /v1/events and POST /v1/batch on srv (512 KiB body limit), a readiness check
 * (ready once a snapshot is loaded; none without a snapshot source) and the collector's metrics
 * (with the follower's, named abacus_collect_snapshot_*).
 * srv must outlive the node's use.
 */
enum ab_err collect_node_mount(struct collect_node *node, struct ab_http_server *srv,
                               struct ab_errinfo *ei);

/*
 * Opens (creates, migrates) the events database, starts its writer thread, the forwarder when
 * forward_url is set (docs/scaling.md), loads the snapshot (a missing or invalid one is counted
 * and retried) and starts its follower. Errors: AB_ERR_STORAGE / AB_ERR_SCHEMA_TOO_NEW
 * for the database, AB_ERR_INVALID_FIELD for a bad forward URL.
 */
enum ab_err collect_node_start(struct collect_node *node, struct ab_errinfo *ei);

/* Makes the follower check its source now rather than at its next poll (any thread). */
void collect_node_poke(struct collect_node *node);

/*
 * Stops the follower and the forwarder, stores what is queued and closes the database. Call after the HTTP server
 * has stopped (its workers wait for the answers of requests being stored).
 */
void collect_node_stop(struct collect_node *node);

/* Frees a stopped node. Accepts NULL. */
void collect_node_free(struct collect_node *node);

/*
 * The number of events rejected by validation (the rejected_events table of the events database
 * db) received in [from_ms, to_ms), ms since epoch, in *count: for the nightly report.
 */
enum ab_err collect_rejected_count(struct ab_db *db, int64_t from_ms, int64_t to_ms,
                                   int64_t *count, struct ab_errinfo *ei);

#endif
