/*
 * Every SQL statement of the analysis (docs/design.md, "Analysis"): reading an experiment's
 * definition from the control database, the scans that aggregate its events into sufficient statistics per
 * (variant, metric, day), and the results table. The events database is only read: one scan of
 * the experiment's exposures and one of its metrics' events, each streamed into the per-unit join
 * of units.c (which says why the join is not SQL).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "analyze_int.h"

void analyze_experiment_def_free(struct analyze_experiment_def *d)
{
    if (d == NULL)
        return;
    free(d->key);
    for (size_t i = 0; i < d->nvariants; i++)
        free(d->variants[i]);
    for (size_t i = 0; i < d->nmetrics; i++) {
        free(d->metrics[i].key);
        free(d->metrics[i].event);
        free(d->metrics[i].denominator_event);
    }
    free(d->metrics);
    free(d);
}

void analyze_agg_free(struct analyze_agg *a)
{
    if (a == NULL)
        return;
    free(a->cells);
    free(a->has_covariate);
    free(a);
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? ab_mem_strdup((const char *)t) : NULL;
}

/* --- definitions (control database, read only) ---------------------------------------------- */

static enum ab_err load_metrics(struct ab_db *db, int64_t experiment_id,
                                struct analyze_experiment_def *d, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT m.key, m.type, em.role, m.event, m.denominator_event, m.direction,"
        "       m.conversion_window_hours"
        "  FROM experiment_metrics em JOIN metrics m ON m.id = em.metric_id"
        " WHERE em.experiment_id = ?1"
        " ORDER BY CASE em.role WHEN 'goal' THEN 0 WHEN 'guardrail' THEN 1 ELSE 2 END, m.key",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, experiment_id);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        d->metrics = ab_mem_realloc(d->metrics, (d->nmetrics + 1) * sizeof(*d->metrics));
        struct analyze_metric_def *m = &d->metrics[d->nmetrics++];
        memset(m, 0, sizeof(*m));
        m->key = col_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        m->type = strcmp(type, "binomial") == 0 ? ANALYZE_BINOMIAL
                  : strcmp(type, "ratio") == 0  ? ANALYZE_RATIO
                                                : ANALYZE_MEAN;
        const char *role = (const char *)sqlite3_column_text(st, 2);
        m->role = strcmp(role, "goal") == 0        ? ANALYZE_GOAL
                  : strcmp(role, "guardrail") == 0 ? ANALYZE_GUARDRAIL
                                                   : ANALYZE_SECONDARY;
        m->event = col_text(st, 3);
        m->denominator_event = col_text(st, 4);
        m->decrease_is_good = strcmp((const char *)sqlite3_column_text(st, 5), "decrease") == 0;
        if (sqlite3_column_type(st, 6) != SQLITE_NULL)
            m->window_ms = (int64_t)(sqlite3_column_double(st, 6) * 3600000.0);
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "reading the experiment's metrics", ei);
}

enum ab_err analyze_sql_load_def(struct ab_db *db, const char *key,
                                 struct analyze_experiment_def **out, struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT e.id, e.phase, e.planned_sample_size, p.started_at, p.ended_at"
        "  FROM experiments e"
        "  LEFT JOIN experiment_phases p ON p.experiment_id = e.id AND p.phase = e.phase"
        " WHERE e.key = ?1",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s != SQLITE_ROW) {
        sqlite3_reset(st);
        return s == SQLITE_DONE ? ab_fail(ei, AB_ERR_NOT_FOUND, "experiment", "no experiment %s", key)
                                : ab_db_fail(db, s, "reading the experiment", ei);
    }
    struct analyze_experiment_def *d = ab_mem_calloc(1, sizeof(*d));
    int64_t id = sqlite3_column_int64(st, 0);
    d->key = ab_mem_strdup(key);
    d->phase = sqlite3_column_int64(st, 1);
    d->nstar = sqlite3_column_type(st, 2) != SQLITE_NULL ? sqlite3_column_int64(st, 2)
                                                          : ANALYZE_DEFAULT_NSTAR;
    int started = sqlite3_column_type(st, 3) != SQLITE_NULL;
    d->phase_start_ms = sqlite3_column_int64(st, 3);
    d->phase_end_ms = sqlite3_column_int64(st, 4); /* NULL reads as 0: still running */
    sqlite3_reset(st);
    if (!started) {
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "status", "experiment %s has not started", key);
        goto Exit;
    }
    if ((rc = ab_db_prepare(db,
                            "SELECT key, weight FROM variants WHERE experiment_id = ?1"
                            " ORDER BY position",
                            &st, ei)) != AB_OK)
        goto Exit;
    sqlite3_bind_int64(st, 1, id);
    while ((s = sqlite3_step(st)) == SQLITE_ROW && d->nvariants < ANALYZE_MAX_VARIANTS) {
        d->variants[d->nvariants] = col_text(st, 0);
        d->weights[d->nvariants++] = sqlite3_column_double(st, 1);
    }
    sqlite3_reset(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = ab_db_fail(db, s, "reading the variants", ei);
        goto Exit;
    }
    rc = load_metrics(db, id, d, ei);
Exit:
    if (rc == AB_OK)
        *out = d;
    else
        analyze_experiment_def_free(d);
    return rc;
}

enum ab_err analyze_sql_running(struct ab_db *db, char ***keys, size_t *n, struct ab_errinfo *ei)
{
    *keys = NULL;
    *n = 0;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT key FROM experiments WHERE status = 'running' ORDER BY key", &st, ei);
    if (rc != AB_OK)
        return rc;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        *keys = ab_mem_realloc(*keys, (*n + 1) * sizeof(char *));
        (*keys)[(*n)++] = col_text(st, 0);
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "listing running experiments", ei);
}

enum ab_err analyze_sql_day_experiments(struct ab_db *db, int64_t from_ms, int64_t to_ms,
                                        struct analyze_day_experiment **out, size_t *n,
                                        struct ab_errinfo *ei)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT e.key, e.name, e.status FROM experiments e"
        "  JOIN experiment_phases p ON p.experiment_id = e.id AND p.phase = e.phase"
        " WHERE p.started_at IS NOT NULL AND p.started_at < ?2"
        "   AND (p.ended_at IS NULL OR p.ended_at > ?1)"
        " ORDER BY e.key",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        *out = ab_mem_realloc(*out, (*n + 1) * sizeof(**out));
        struct analyze_day_experiment *e = &(*out)[(*n)++];
        e->key = col_text(st, 0);
        e->name = col_text(st, 1);
        e->status = col_text(st, 2);
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "listing the day's experiments", ei);
}

/* --- aggregation (events database) ---------------------------------------------------------- */

int analyze_variant_index(const struct analyze_experiment_def *d, const char *v)
{
    for (size_t i = 0; v != NULL && i < d->nvariants; i++)
        if (strcmp(d->variants[i], v) == 0)
            return (int)i;
    return -1;
}

struct analyze_sums *analyze_agg_at(const struct analyze_agg *a,
                                    const struct analyze_experiment_def *d, size_t metric,
                                    const char *v, int64_t day)
{
    int i = analyze_variant_index(d, v);
    if (i < 0 || day < 0 || (uint64_t)day >= a->ndays)
        return NULL;
    return &analyze_agg_cell(a, metric, (size_t)i, (size_t)day)->sums;
}

/* Streams the experiment's exposures in the phase into the join. */
static enum ab_err scan_exposures(struct ab_db *db, const struct analyze_experiment_def *d,
                                  int64_t through, struct analyze_units *j, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT unit, variant, ts FROM events"
                                   " WHERE type = 'exposure' AND experiment = ?1"
                                   "   AND ts >= ?2 AND ts < ?3",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, d->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, d->phase_start_ms);
    sqlite3_bind_int64(st, 3, through);
    int s;
    while (rc == AB_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *unit = (const char *)sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        const char *variant = (const char *)sqlite3_column_text(st, 1);
        size_t vlen = (size_t)sqlite3_column_bytes(st, 1);
        rc = analyze_units_exposure(j, unit, len, variant, vlen, sqlite3_column_int64(st, 2));
    }
    sqlite3_reset(st);
    if (rc != AB_OK)
        return ab_fail(ei, rc, "experiment", "too many units for the SQLite store");
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "reading exposures", ei);
}

/* Streams the events of the experiment's metrics from from_ms (the lookback before the first
 * exposure) into the join. */
static enum ab_err scan_metrics(struct ab_db *db, const struct analyze_experiment_def *d,
                                int64_t from, int64_t through, struct analyze_units *j,
                                struct ab_errinfo *ei)
{
    json_t *names = json_array();
    for (size_t m = 0; m < d->nmetrics; m++) {
        json_array_append_new(names, json_string(d->metrics[m].event));
        if (d->metrics[m].denominator_event != NULL)
            json_array_append_new(names, json_string(d->metrics[m].denominator_event));
    }
    char *list = json_dumps(names, JSON_COMPACT);
    json_decref(names);
    if (list == NULL)
        return ab_fail(ei, AB_ERR_INTERNAL, "metrics", "cannot list the metrics' events");
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT unit, metric, value, ts FROM events"
        " WHERE type = 'metric' AND ts >= ?1 AND ts < ?2"
        "   AND metric IN (SELECT value FROM json_each(?3))",
        &st, ei);
    if (rc != AB_OK) {
        free(list);
        return rc;
    }
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, through);
    sqlite3_bind_text(st, 3, list, -1, free);
    int s;
    while (rc == AB_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *unit = (const char *)sqlite3_column_text(st, 0);
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        rc = analyze_units_metric(j, unit, len, (const char *)sqlite3_column_text(st, 1),
                                  sqlite3_column_double(st, 2), sqlite3_column_int64(st, 3));
    }
    sqlite3_clear_bindings(st);
    sqlite3_reset(st);
    if (rc != AB_OK)
        return ab_fail(ei, rc, "experiment", "too many metric values for the SQLite store");
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "reading metric events", ei);
}

struct analyze_agg *analyze_agg_new(const struct analyze_experiment_def *d, int64_t *through)
{
    if (d->phase_end_ms > 0 && d->phase_end_ms < *through)
        *through = d->phase_end_ms;
    struct analyze_agg *a = ab_mem_calloc(1, sizeof(*a));
    a->nvariants = d->nvariants;
    a->nmetrics = d->nmetrics;
    a->ndays = *through > d->phase_start_ms
                   ? (size_t)((*through - 1 - d->phase_start_ms) / ANALYZE_DAY_MS + 1)
                   : 1;
    a->cells = ab_mem_calloc(a->nmetrics * a->nvariants * a->ndays + 1, sizeof(*a->cells));
    a->has_covariate = ab_mem_calloc(a->nmetrics + 1, sizeof(int));
    for (size_t m = 0; m < d->nmetrics; m++)
        a->has_covariate[m] = d->metrics[m].type != ANALYZE_RATIO;
    return a;
}

void analyze_agg_accumulate(struct analyze_agg *a, size_t m)
{
    for (size_t v = 0; v < a->nvariants; v++) {
        for (size_t day = 1; day < a->ndays; day++) {
            struct analyze_sums *c = &analyze_agg_cell(a, m, v, day)->sums;
            const struct analyze_sums *p = &analyze_agg_cell(a, m, v, day - 1)->sums;
            c->n += p->n;
            c->sum_y += p->sum_y;
            c->sum_yy += p->sum_yy;
            c->sum_x += p->sum_x;
            c->sum_xx += p->sum_xx;
            c->sum_xy += p->sum_xy;
        }
    }
}

enum ab_err analyze_sql_aggregate(struct ab_db *db, const struct analyze_experiment_def *d,
                                  int64_t through, struct analyze_agg **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct analyze_agg *a = analyze_agg_new(d, &through);
    struct analyze_units *j = analyze_units_new(d, a, through);
    enum ab_err rc = scan_exposures(db, d, through, j, ei);
    if (rc == AB_OK) {
        int64_t first = analyze_units_end_exposures(j);
        if (first < through)
            rc = scan_metrics(db, d, first - ANALYZE_CUPED_LOOKBACK_MS, through, j, ei);
    }
    if (rc == AB_OK && (rc = analyze_units_finish(j)) != AB_OK)
        rc = ab_fail(ei, rc, "experiment", "too many metric values for the SQLite store");
    if (rc == AB_OK) {
        *out = a;
    } else {
        analyze_agg_free(a);
    }
    analyze_units_free(j);
    return rc;
}

/* --- results table (control database) ------------------------------------------------------- */

struct store_tx {
    const char *key;
    int64_t phase, computed_at, keep_since;
    const char *json;
};

static enum ab_err store_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    const struct store_tx *t = arg;
    static const char *const SQL[] = {
        "INSERT INTO results (experiment_id, phase, computed_at, results_json)"
        " SELECT id, ?2, ?3, ?4 FROM experiments WHERE key = ?1"
        " ON CONFLICT (experiment_id, phase) DO UPDATE"
        "   SET computed_at = excluded.computed_at, results_json = excluded.results_json",
        "INSERT OR REPLACE INTO results_history (experiment_id, phase, computed_at, results_json)"
        " SELECT id, ?2, ?3, ?4 FROM experiments WHERE key = ?1",
        "DELETE FROM results_history WHERE computed_at < ?5"
        " AND experiment_id = (SELECT id FROM experiments WHERE key = ?1)",
        "INSERT INTO results_refresh (experiment_id, attempted_at)"
        " SELECT id, ?3 FROM experiments WHERE key = ?1"
        " ON CONFLICT (experiment_id) DO UPDATE SET attempted_at = excluded.attempted_at,"
        "   error_code = NULL, error_message = NULL",
    };
    enum ab_err rc = AB_OK;
    for (size_t i = 0; i < sizeof(SQL) / sizeof(SQL[0]) && rc == AB_OK; i++) {
        sqlite3_stmt *st;
        if ((rc = ab_db_prepare(db, SQL[i], &st, ei)) != AB_OK)
            return rc;
        int np = sqlite3_bind_parameter_count(st);
        sqlite3_bind_text(st, 1, t->key, -1, SQLITE_TRANSIENT);
        if (np >= 2)
            sqlite3_bind_int64(st, 2, t->phase);
        if (np >= 3)
            sqlite3_bind_int64(st, 3, t->computed_at);
        if (np >= 4)
            sqlite3_bind_text(st, 4, t->json, -1, SQLITE_TRANSIENT);
        if (np >= 5)
            sqlite3_bind_int64(st, 5, t->keep_since);
        rc = ab_db_step_done(db, st, ei);
    }
    return rc;
}

enum ab_err analyze_sql_store(struct ab_db *db, const char *key, int64_t phase,
                              int64_t computed_at_ms, const char *results_json,
                              int64_t keep_since_ms, struct ab_errinfo *ei)
{
    struct store_tx t = {key, phase, computed_at_ms, keep_since_ms, results_json};
    return ab_db_transaction(db, store_tx, &t, ei);
}

enum ab_err analyze_sql_store_failure(struct ab_db *db, const char *key, int64_t attempted_at_ms,
                                      const char *code, const char *message,
                                      struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "INSERT INTO results_refresh (experiment_id, attempted_at, error_code, error_message)"
        " SELECT id, ?2, ?3, ?4 FROM experiments WHERE key = ?1"
        " ON CONFLICT (experiment_id) DO UPDATE SET attempted_at = excluded.attempted_at,"
        "   error_code = excluded.error_code, error_message = excluded.error_message",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, attempted_at_ms);
    sqlite3_bind_text(st, 3, code, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, message, -1, SQLITE_TRANSIENT);
    return ab_db_step_done(db, st, ei);
}

enum ab_err analyze_sql_refresh_state(struct ab_db *db, const char *key,
                                      struct analyze_refresh_state *out, struct ab_errinfo *ei)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT e.status, e.phase, p.started_at, r.computed_at, f.attempted_at, f.error_code,"
        "  f.error_message FROM experiments e"
        "  LEFT JOIN experiment_phases p ON p.experiment_id = e.id AND p.phase = e.phase"
        "  LEFT JOIN results r ON r.experiment_id = e.id AND r.phase = e.phase"
        "  LEFT JOIN results_refresh f ON f.experiment_id = e.id"
        " WHERE e.key = ?1",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        const unsigned char *status = sqlite3_column_text(st, 0);
        out->running = status != NULL && strcmp((const char *)status, "running") == 0;
        out->phase = sqlite3_column_int64(st, 1);
        out->phase_started_at = sqlite3_column_int64(st, 2);
        out->computed_at = sqlite3_column_int64(st, 3);
        out->attempted_at = sqlite3_column_int64(st, 4);
        const unsigned char *code = sqlite3_column_text(st, 5);
        const unsigned char *msg = sqlite3_column_text(st, 6);
        if (code != NULL) {
            snprintf(out->error_code, sizeof(out->error_code), "%s", (const char *)code);
            snprintf(out->error_message, sizeof(out->error_message), "%s",
                     msg != NULL ? (const char *)msg : "");
        }
    }
    sqlite3_reset(st);
    if (s == SQLITE_DONE)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no experiment %.100s", key);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(db, s, "reading the refresh state", ei);
}

enum ab_err analyze_sql_history(struct ab_db *db, const char *key, int64_t limit, json_t **out,
                                struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT h.phase, h.computed_at FROM results_history h"
                                   "  JOIN experiments e ON e.id = h.experiment_id"
                                   " WHERE e.key = ?1 ORDER BY h.computed_at DESC LIMIT ?2",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, limit);
    json_t *list = json_array();
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(list, json_pack("{s:I, s:o, s:I}", "phase",
                                              (json_int_t)sqlite3_column_int64(st, 0),
                                              "computed_at",
                                              analyze_rfc3339(sqlite3_column_int64(st, 1)),
                                              "computed_at_ms",
                                              (json_int_t)sqlite3_column_int64(st, 1)));
    sqlite3_reset(st);
    if (s != SQLITE_DONE) {
        json_decref(list);
        return ab_db_fail(db, s, "reading the results history", ei);
    }
    *out = list;
    return AB_OK;
}

enum ab_err analyze_sql_oldest_result(struct ab_db *db, int64_t *oldest_ms,
                                      struct ab_errinfo *ei)
{
    *oldest_ms = 0;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT min(coalesce(r.computed_at, p.started_at)) FROM experiments e"
        "  JOIN experiment_phases p ON p.experiment_id = e.id AND p.phase = e.phase"
        "  LEFT JOIN results r ON r.experiment_id = e.id AND r.phase = e.phase"
        " WHERE e.status = 'running'",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *oldest_ms = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(db, s, "reading result ages", ei);
}


enum ab_err analyze_sql_load_results(struct ab_db *db, const char *key, int64_t as_of_ms,
                                     char **json, struct ab_errinfo *ei)
{
    *json = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   as_of_ms <= 0
                                       ? "SELECT r.results_json FROM results r"
                                         "  JOIN experiments e ON e.id = r.experiment_id"
                                         " WHERE e.key = ?1 AND r.phase = e.phase"
                                       : "SELECT h.results_json FROM results_history h"
                                         "  JOIN experiments e ON e.id = h.experiment_id"
                                         " WHERE e.key = ?1 AND h.computed_at <= ?2"
                                         " ORDER BY h.computed_at DESC LIMIT 1",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if (as_of_ms > 0)
        sqlite3_bind_int64(st, 2, as_of_ms);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *json = col_text(st, 0);
    sqlite3_reset(st);
    if (s == SQLITE_ROW)
        return AB_OK;
    if (s != SQLITE_DONE)
        return ab_db_fail(db, s, "reading results", ei);
    return as_of_ms <= 0
               ? ab_fail(ei, AB_ERR_NOT_FOUND, "experiment", "no results for %s yet", key)
               : ab_fail(ei, AB_ERR_NOT_FOUND, "as_of",
                         "no results of %s computed at or before that time", key);
}
