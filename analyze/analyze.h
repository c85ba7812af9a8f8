/*
 * The analysis component's entry points, for `abacus analyze`, the admin API's results and
 * "update results" endpoints, and the nightly report: compute an experiment's results from the
 * events stored so far (DESIGN.md section 7), store them in the control database's results
 * table, and read them back. Recomputing is idempotent: it replaces the stored results of the
 * experiment's current phase.
 */
#ifndef ABACUS_ANALYZE_H
#define ABACUS_ANALYZE_H

#include <stdint.h>
#include <jansson.h>
#include "abacus/db.h"
#include "abacus/err.h"

struct analyze_settings {
    double alpha;           /* two-sided; 0 = 0.05 */
    const char *correction; /* "holm" (default when NULL), "bh" or "none" */
};

struct ab_ch;

/* Where the events are: a collector's SQLite events database, or ClickHouse (one of the two). */
struct analyze_events {
    struct ab_db *sqlite;
    struct ab_ch *clickhouse; /* its events table (migrations/clickhouse/) */
};

/*
 * Computes experiment key's results from events (the events database) as of now_ms (events at
 * or after it are left out), stores them in control's results table and returns them in
 * *results (a new reference, the caller's). Errors: AB_ERR_NOT_FOUND (no such experiment),
 * AB_ERR_INVALID_FIELD (it never started; a bad setting), AB_ERR_STORAGE.
 */
enum ab_err analyze_experiment(struct ab_db *control, struct ab_db *events, const char *key,
                               int64_t now_ms, const struct analyze_settings *settings,
                               json_t **results, struct ab_errinfo *ei);

/*
 * analyze_experiment with the events in either store: the same aggregation (ClickHouse SQL in
 * analyze/clickhouse.c), the same statistics. ClickHouse adds AB_ERR_UNAVAILABLE (unreachable).
 */
enum ab_err analyze_experiment_in(struct ab_db *control, const struct analyze_events *events,
                                  const char *key, int64_t now_ms,
                                  const struct analyze_settings *settings, json_t **results,
                                  struct ab_errinfo *ei);

/* The keys of the running experiments, sorted (*keys and each key the caller's, free()). */
enum ab_err analyze_running(struct ab_db *control, char ***keys, size_t *n,
                            struct ab_errinfo *ei);

/* The stored results of experiment key's current phase (a new reference), or AB_ERR_NOT_FOUND. */
enum ab_err analyze_stored(struct ab_db *control, const char *key, json_t **results,
                           struct ab_errinfo *ei);

#endif
