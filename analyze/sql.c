/*
 * Every SQL statement of the analysis (DESIGN.md section 7): reading an experiment's definition
 * from the control database, aggregating its events into sufficient statistics per (variant,
 * metric, day), and the results table. The events database is only read; the aggregation keeps
 * its intermediate per-unit tables in the connection's TEMP schema.
 *
 * Cumulative series from one pass: a unit's value as of day D is the running sum of its daily
 * increments. Per (unit, day with events) the query knows the value before and after that day,
 * so the change of sum(v) and sum(v^2) (and of the cross sums) is after - before; summing those
 * changes per (variant, day) and accumulating over days in C gives every day's statistics without
 * one row per unit and day.
 */
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

/* Each unit's first exposure in the phase; multi marks units that saw more than one variant. */
static const char SQL_UNITS[] =
    "CREATE TEMP TABLE IF NOT EXISTS an_units (unit TEXT PRIMARY KEY, t0 INTEGER NOT NULL,"
    " t1 INTEGER NOT NULL, variant TEXT, multi INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TEMP TABLE IF NOT EXISTS an_pre (unit TEXT PRIMARY KEY, x REAL NOT NULL) WITHOUT ROWID;"
    "DELETE FROM an_units; DELETE FROM an_pre;";

static enum ab_err step_all(struct ab_db *db, sqlite3_stmt *st, const char *what,
                            struct ab_errinfo *ei)
{
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, what, ei);
}

static enum ab_err fill_units(struct ab_db *db, const struct analyze_experiment_def *d,
                              int64_t through, struct analyze_agg *a, struct ab_errinfo *ei)
{
    enum ab_err rc = ab_db_exec(db, SQL_UNITS, ei);
    sqlite3_stmt *st;
    if (rc != AB_OK ||
        (rc = ab_db_prepare(
             db,
             "INSERT INTO an_units (unit, t0, t1, variant, multi)"
             " SELECT unit, MIN(ts), MAX(ts), MIN(variant), MIN(variant) IS NOT MAX(variant)"
             "   FROM events"
             "  WHERE type = 'exposure' AND experiment = ?1 AND ts >= ?2 AND ts < ?3"
             "  GROUP BY unit",
             &st, ei)) != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, d->key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, d->phase_start_ms);
    sqlite3_bind_int64(st, 3, through);
    if ((rc = step_all(db, st, "finding first exposures", ei)) != AB_OK)
        return rc;
    if ((rc = ab_db_prepare(db,
                            "SELECT variant, multi, COUNT(*), MAX(t1) FROM an_units"
                            " GROUP BY variant, multi",
                            &st, ei)) != AB_OK)
        return rc;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t count = sqlite3_column_int64(st, 2), last = sqlite3_column_int64(st, 3);
        if (last > a->data_through_ms)
            a->data_through_ms = last;
        int v = analyze_variant_index(d, (const char *)sqlite3_column_text(st, 0));
        if (sqlite3_column_int(st, 1))
            a->multiple_exposures += count;
        else if (v < 0)
            a->unknown_variant += count;
        else
            a->units[v] += count;
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "counting units", ei);
}

/* The covariate of metric m: each unit's value in the lookback window before its exposure. */
static enum ab_err fill_covariate(struct ab_db *db, const struct analyze_metric_def *m,
                                  struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_exec(db, "DELETE FROM an_pre", ei);
    if (rc != AB_OK ||
        (rc = ab_db_prepare(
             db,
             "INSERT INTO an_pre (unit, x)"
             " SELECT e.unit, CASE WHEN ?3 THEN 1.0 ELSE SUM(e.value) END"
             "   FROM events e JOIN an_units u ON u.unit = e.unit"
             "  WHERE e.type = 'metric' AND e.metric = ?1 AND u.multi = 0"
             "    AND e.ts >= u.t0 - ?2 AND e.ts < u.t0"
             "  GROUP BY e.unit",
             &st, ei)) != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, m->event, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, ANALYZE_CUPED_LOOKBACK_MS);
    sqlite3_bind_int(st, 3, m->type == ANALYZE_BINOMIAL);
    return step_all(db, st, "computing the pre-exposure covariate", ei);
}

/* Units entering each (variant, day), with their covariate sums. */
static enum ab_err fill_entries(struct ab_db *db, const struct analyze_experiment_def *d,
                                size_t metric, struct analyze_agg *a, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT u.variant, (u.t0 - ?1) / 86400000, COUNT(*), TOTAL(p.x), TOTAL(p.x * p.x)"
        "  FROM an_units u LEFT JOIN an_pre p ON p.unit = u.unit"
        " WHERE u.multi = 0 GROUP BY 1, 2",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, d->phase_start_ms);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct analyze_sums *c = analyze_agg_at(a, d, metric,
                                                (const char *)sqlite3_column_text(st, 0),
                                                sqlite3_column_int64(st, 1));
        if (c == NULL)
            continue;
        c->n += (double)sqlite3_column_int64(st, 2);
        c->sum_x += sqlite3_column_double(st, 3);
        c->sum_xx += sqlite3_column_double(st, 4);
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "counting units per day", ei);
}

/*
 * The daily changes of the metric's sums. f(v) is the unit's metric value from its running
 * total v: v itself, or (v > 0) for a binomial metric (?5), where v counts events.
 */
static enum ab_err fill_increments(struct ab_db *db, const struct analyze_experiment_def *d,
                                   size_t metric, int64_t through, struct analyze_agg *a,
                                   struct ab_errinfo *ei)
{
    const struct analyze_metric_def *m = &d->metrics[metric];
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "WITH inc AS ("
        "  SELECT e.unit AS unit, (e.ts - ?1) / 86400000 AS day, MAX(e.ts) AS last,"
        "         TOTAL(CASE WHEN e.metric = ?2 THEN (CASE WHEN ?5 THEN 1.0 ELSE e.value END)"
        "               END) AS dn,"
        "         TOTAL(CASE WHEN e.metric = ?3 THEN e.value END) AS dd"
        "    FROM events e JOIN an_units u ON u.unit = e.unit"
        "   WHERE e.type = 'metric' AND e.metric IN (?2, ?3) AND u.multi = 0"
        "     AND e.ts >= u.t0 AND e.ts < ?4 AND (?6 = 0 OR e.ts < u.t0 + ?6)"
        "   GROUP BY e.unit, day),"
        " run AS ("
        "  SELECT unit, day, last, dn, dd, SUM(dn) OVER w AS cn, SUM(dd) OVER w AS cd"
        "    FROM inc WINDOW w AS (PARTITION BY unit ORDER BY day)),"
        " val AS ("
        "  SELECT unit, day, last, cd, cd - dd AS pd,"
        "         CASE WHEN ?5 THEN (cn > 0) * 1.0 ELSE cn END AS y,"
        "         CASE WHEN ?5 THEN (cn - dn > 0) * 1.0 ELSE cn - dn END AS py"
        "    FROM run)"
        "SELECT u.variant, v.day, TOTAL(v.y - v.py), TOTAL(v.y * v.y - v.py * v.py),"
        "       TOTAL(v.cd - v.pd), TOTAL(v.cd * v.cd - v.pd * v.pd),"
        "       TOTAL(CASE WHEN ?7 THEN v.y * v.cd - v.py * v.pd"
        "                  ELSE COALESCE(p.x, 0) * (v.y - v.py) END), MAX(v.last)"
        "  FROM val v JOIN an_units u ON u.unit = v.unit LEFT JOIN an_pre p ON p.unit = v.unit"
        " GROUP BY 1, 2",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, d->phase_start_ms);
    sqlite3_bind_text(st, 2, m->event, -1, SQLITE_TRANSIENT);
    if (m->type == ANALYZE_RATIO)
        sqlite3_bind_text(st, 3, m->denominator_event, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, through);
    sqlite3_bind_int(st, 5, m->type == ANALYZE_BINOMIAL);
    sqlite3_bind_int64(st, 6, m->window_ms);
    sqlite3_bind_int(st, 7, m->type == ANALYZE_RATIO);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct analyze_sums *c = analyze_agg_at(a, d, metric,
                                                (const char *)sqlite3_column_text(st, 0),
                                                sqlite3_column_int64(st, 1));
        if (c == NULL)
            continue;
        c->sum_y += sqlite3_column_double(st, 2);
        c->sum_yy += sqlite3_column_double(st, 3);
        if (m->type == ANALYZE_RATIO) {
            c->sum_x += sqlite3_column_double(st, 4);
            c->sum_xx += sqlite3_column_double(st, 5);
        }
        c->sum_xy += sqlite3_column_double(st, 6);
        int64_t last = sqlite3_column_int64(st, 7);
        if (last > a->data_through_ms)
            a->data_through_ms = last;
    }
    sqlite3_reset(st);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(db, s, "aggregating metric events", ei);
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
    enum ab_err rc = fill_units(db, d, through, a, ei);
    for (size_t m = 0; m < d->nmetrics && rc == AB_OK; m++) {
        if (a->has_covariate[m])
            rc = fill_covariate(db, &d->metrics[m], ei);
        else
            rc = ab_db_exec(db, "DELETE FROM an_pre", ei);
        if (rc == AB_OK)
            rc = fill_entries(db, d, m, a, ei);
        if (rc == AB_OK)
            rc = fill_increments(db, d, m, through, a, ei);
        if (rc == AB_OK) /* daily -> cumulative */
            analyze_agg_accumulate(a, m);
    }
    if (rc == AB_OK)
        rc = ab_db_exec(db, "DELETE FROM an_units; DELETE FROM an_pre;", ei);
    if (rc == AB_OK)
        *out = a;
    else
        analyze_agg_free(a);
    return rc;
}

/* --- results table (control database) ------------------------------------------------------- */

enum ab_err analyze_sql_store(struct ab_db *db, const char *key, int64_t phase,
                              int64_t computed_at_ms, const char *results_json,
                              struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "INSERT INTO results (experiment_id, phase, computed_at, results_json)"
        " SELECT id, ?2, ?3, ?4 FROM experiments WHERE key = ?1"
        " ON CONFLICT (experiment_id, phase) DO UPDATE"
        "   SET computed_at = excluded.computed_at, results_json = excluded.results_json",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, phase);
    sqlite3_bind_int64(st, 3, computed_at_ms);
    sqlite3_bind_text(st, 4, results_json, -1, SQLITE_TRANSIENT);
    return ab_db_step_done(db, st, ei);
}

enum ab_err analyze_sql_load_results(struct ab_db *db, const char *key, char **json,
                                     struct ab_errinfo *ei)
{
    *json = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT r.results_json FROM results r"
                                   "  JOIN experiments e ON e.id = r.experiment_id"
                                   " WHERE e.key = ?1 AND r.phase = e.phase",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *json = col_text(st, 0);
    sqlite3_reset(st);
    if (s == SQLITE_ROW)
        return AB_OK;
    return s == SQLITE_DONE
               ? ab_fail(ei, AB_ERR_NOT_FOUND, "experiment", "no results for %s yet", key)
               : ab_db_fail(db, s, "reading results", ei);
}
