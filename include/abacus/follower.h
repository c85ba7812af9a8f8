/*
 * The snapshot follower: how a component (an assign node, a collector) gets each new snapshot.
 * File mode watches a snapshot file and loads it when it changes. Replication mode serves the
 * newest valid snapshot of its cache dir at once, then polls a manifest (with jitter), downloads
 * newer versions, verifies them (size, SHA-256, and ab_snapshot_read's checks: quick_check,
 * format, every experiment), moves them into the cache dir and hands them over. Any failure keeps
 * what the component has (last known good), is counted by reason and retried with backoff; a
 * version not above the one in use is never handed over (docs/replication.md). One thread per
 * follower; the component's callback runs on it.
 */
#ifndef ABACUS_FOLLOWER_H
#define ABACUS_FOLLOWER_H

#include <stdint.h>
#include <stdio.h>
#include "abacus/clock.h"
#include "abacus/err.h"
#include "abacus/log.h"
#include "abacus/snapshot.h"

struct ab_follower;

/*
 * A verified snapshot is ready: the component takes snap over (it frees it, on failure too) and
 * makes it current, or refuses it with AB_ERR_INVALID_FIELD and a message in ei (counted as
 * "invalid"; the follower keeps the previous version and retries the source with backoff).
 */
typedef enum ab_err (*ab_follower_ready_cb)(void *data, struct ab_snapshot *snap,
                                            struct ab_errinfo *ei);

/* Where a component's snapshots come from: exactly one of a file and a manifest URL. */
struct ab_follower_source {
    const char *snapshot_file;  /* file mode: the snapshot file to watch, or */
    const char *snapshot_url;   /* replication mode: the manifest URL of a control plane or mirror */
    const char *cache_dir;      /* replication mode: where verified snapshots are kept (created) */
    int poll_interval_ms;       /* how often the file or manifest is checked; 0 = 5000 */
    int64_t max_snapshot_bytes; /* largest snapshot downloaded; 0 = 1 GiB */
    uint64_t jitter_seed;       /* seed of the poll jitter; 0 = from the clock and pid */
};

/* 1 when src names a file or a URL (a component without one never gets a snapshot). */
int ab_follower_source_given(const struct ab_follower_source *src);

struct ab_follower_config {
    struct ab_follower_source source;
    const char *metrics_prefix; /* of the metric names ("abacus_snapshot": _version, ...) */
    const char *component;      /* named in log lines ("assign") */
    ab_follower_ready_cb ready;
    void *data;                 /* ready's */
    const struct ab_log *log;
    const struct ab_clock *clock; /* NULL: the system clock */
};

/*
 * Creates a follower of exactly one source (a file, or a URL with a cache dir; the strings are
 * copied). Errors: AB_ERR_INVALID_FIELD naming the flag ("snapshot-url", "cache-dir"), AB_ERR_IO
 * when the cache dir cannot be created.
 */
enum ab_err ab_follower_new(const struct ab_follower_config *cfg, struct ab_follower **out,
                            struct ab_errinfo *ei);

/*
 * Loads what is available now (the file, or the newest valid snapshot of the cache dir; a
 * missing or invalid one is counted and retried) on the calling thread, then starts the thread
 * that follows the source.
 */
enum ab_err ab_follower_start(struct ab_follower *f, struct ab_errinfo *ei);

/* Asks the follower to check the source now rather than at its next poll (any thread). */
void ab_follower_poke(struct ab_follower *f);

/* Stops the thread (no callback runs after it returns). Accepts NULL. */
void ab_follower_stop(struct ab_follower *f);

/* Frees a stopped follower. Accepts NULL. */
void ab_follower_free(struct ab_follower *f);

/* The version handed over last (0: none yet). Any thread. */
int64_t ab_follower_version(const struct ab_follower *f);

/* The file or the manifest URL followed (owned by the follower). */
const char *ab_follower_source(const struct ab_follower *f);

/*
 * Writes the follower's metrics (Prometheus text) to out, named from metrics_prefix: _version,
 * _age_seconds (since the snapshot in use was written), _loads_total, _rejected_total{reason};
 * in replication mode also _polls_total, _loaded_poll (the poll that brought the snapshot in use,
 * 0: the cache dir) and _source_age_seconds (since the source last answered).
 */
void ab_follower_metrics(const struct ab_follower *f, FILE *out);

#endif
