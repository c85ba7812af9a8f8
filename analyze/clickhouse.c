/*
 * Every ClickHouse statement of the analysis: the same sufficient statistics as sql.c and units.c
 * (first exposure per unit, exclusion of units with two variants, metric values within the
 * conversion window, the pre-exposure covariate, ratio cross sums, the per (unit, day) changes of
 * the running sums), written for ClickHouse 18.16, which has neither window functions nor common
 * table expressions nor bound parameters, and one query per experiment (fill) that reads its
 * rows once. Metric events are deduplicated per unit on (id, metric), the table's own dedup key
 * (the forwarder may have stored a re-sent row twice until ClickHouse merges it), never by a hash
 * of every event id. Literals are quoted with
 * ab_ch_append_quoted. The results come back as JSONEachRow and fill the same struct analyze_agg
 * the SQLite path does, so the statistics (results.c) are shared; every fill adds to the cells,
 * so the shards of a cluster are aggregated one after the other into one agg.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/clickhouse.h"
#include "abacus/mem.h"
#include "analyze_int.h"

struct q {
    char *s;
    size_t len;
};

static double num(const json_t *row, const char *key)
{
    return json_number_value(json_object_get(row, key));
}

static int64_t integer_of(const json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)json_number_value(v);
}

static int64_t integer(const json_t *row, const char *key)
{
    return integer_of(json_object_get(row, key));
}

static int64_t integer_at(const json_t *array, size_t i)
{
    return integer_of(json_array_get(array, i));
}

static double number_at(const json_t *array, size_t i)
{
    return json_number_value(json_array_get(array, i));
}

static enum ab_err run(struct ab_ch *ch, struct q *q, json_t **rows, struct ab_errinfo *ei)
{
    ab_ch_appendf(&q->s, &q->len, " FORMAT JSONEachRow");
    enum ab_err rc = ab_ch_query_rows(ch, q->s, rows, ei);
    free(q->s);
    q->s = NULL;
    q->len = 0;
    return rc;
}

/* The metric names the experiment reads, in order (an event or denominator may repeat). */
static size_t metric_names(const struct analyze_experiment_def *d, const char **names, size_t cap)
{
    size_t n = 0;
    for (size_t m = 0; m < d->nmetrics && n + 2 <= cap; m++) {
        names[n++] = d->metrics[m].event;
        if (d->metrics[m].type == ANALYZE_RATIO)
            names[n++] = d->metrics[m].denominator_event;
    }
    return n;
}

/* 1 + the first index of name in names[0..n) (events carry it as their metric's code). */
static size_t code_of(const char *const names[], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i + 1;
    return 0;
}

/* Appends ['name', ...] of the names the experiment reads. */
static void names_literal(struct q *q, const char *const names[], size_t n)
{
    if (n == 0) { /* an experiment without metrics: [] would have no element type */
        ab_ch_appendf(&q->s, &q->len, "emptyArrayString()");
        return;
    }
    ab_ch_appendf(&q->s, &q->len, "[");
    for (size_t i = 0; i < n; i++) {
        ab_ch_appendf(&q->s, &q->len, i > 0 ? ", " : "");
        ab_ch_append_quoted(&q->s, &q->len, names[i]);
    }
    ab_ch_appendf(&q->s, &q->len, "]");
}

/* The rows of the experiment's events, one read: its exposures in the phase and the events of
 * every metric name it uses, before through. */
static void experiment_events(struct q *q, const char *table,
                              const struct analyze_experiment_def *d, int64_t through)
{
    ab_ch_appendf(&q->s, &q->len, " FROM %s WHERE (type = 'exposure' AND experiment = ", table);
    ab_ch_append_quoted(&q->s, &q->len, d->key);
    ab_ch_appendf(&q->s, &q->len, " AND ts >= %lld AND ts < %lld)", (long long)d->phase_start_ms,
                  (long long)through);
    if (d->nmetrics == 0) /* the units alone */
        return;
    ab_ch_appendf(&q->s, &q->len, " OR (type = 'metric' AND ts < %lld AND metric IN (",
                  (long long)through);
    for (size_t m = 0; m < d->nmetrics; m++) {
        const struct analyze_metric_def *md = &d->metrics[m];
        ab_ch_appendf(&q->s, &q->len, m > 0 ? ", " : "");
        ab_ch_append_quoted(&q->s, &q->len, md->event);
        if (md->type == ANALYZE_RATIO) {
            ab_ch_appendf(&q->s, &q->len, ", ");
            ab_ch_append_quoted(&q->s, &q->len, md->denominator_event);
        }
    }
    ab_ch_appendf(&q->s, &q->len, "))");
}

/* Appends metric m's per-unit columns (suffix _m) to the middle level of fill's query, from t0
 * and ev, the unit's distinct metric events sorted by time as tuples (ts, code, value): e_m its
 * events, x_m the covariate (the numerator in the 14-day lookback; 0 for a ratio), c_m the
 * counted events (from t0, within the window), k_m their days, l_m the last one's time, y_m the
 * running value after each (binomial: converted yet), and per counted event the changes of
 * sum(y) (sy), sum(y²) (syy), of the denominator's sums (sd, sdd; ratio) and of the cross sum
 * (sxy: x·y, or y·denominator for a ratio). Summed per day those changes are the day's, as
 * sql.c's fill_increments: the changes of one unit within a day add up to its change that day. */
static void metric_columns(struct q *q, const struct analyze_experiment_def *d, size_t m,
                           const char *const names[], size_t nn)
{
    const struct analyze_metric_def *md = &d->metrics[m];
    size_t en = code_of(names, nn, md->event);
    int ratio = md->type == ANALYZE_RATIO, binom = md->type == ANALYZE_BINOMIAL;
    size_t dn = ratio ? code_of(names, nn, md->denominator_event) : en;
    if (dn != en)
        ab_ch_appendf(&q->s, &q->len, ", arrayFilter(e -> e.2 = %zu OR e.2 = %zu, ev) AS e_%zu",
                      en, dn, m);
    else
        ab_ch_appendf(&q->s, &q->len, ", arrayFilter(e -> e.2 = %zu, ev) AS e_%zu", en, m);
    if (ratio)
        ab_ch_appendf(&q->s, &q->len, ", 0. AS x_%zu", m);
    else
        ab_ch_appendf(&q->s, &q->len,
                      ", arraySum(arrayMap(e -> if(e.1 >= t0 - %lld AND e.1 < t0, %s, 0.), e_%zu))"
                      " AS cv_%zu, %s(cv_%zu%s) AS x_%zu",
                      (long long)ANALYZE_CUPED_LOOKBACK_MS, binom ? "1." : "e.3", m, m,
                      binom ? "toFloat64" : "", m, binom ? " > 0" : "", m);
    ab_ch_appendf(&q->s, &q->len, ", arrayFilter(e -> e.1 >= t0");
    if (md->window_ms > 0)
        ab_ch_appendf(&q->s, &q->len, " AND e.1 < t0 + %lld", (long long)md->window_ms);
    ab_ch_appendf(&q->s, &q->len,
                  ", e_%zu) AS c_%zu, arrayMap(e -> intDiv(e.1 - %lld, %lld), c_%zu) AS k_%zu,"
                  " arrayReduce('max', arrayMap(e -> e.1, c_%zu)) AS l_%zu",
                  m, m, (long long)d->phase_start_ms, (long long)ANALYZE_DAY_MS, m, m, m, m);
    if (binom)
        ab_ch_appendf(&q->s, &q->len,
                      ", arrayMap(z -> toFloat64(z > 0), arrayCumSum(arrayMap(e -> 1., c_%zu)))"
                      " AS y_%zu",
                      m, m);
    else
        ab_ch_appendf(&q->s, &q->len,
                      ", arrayCumSum(arrayMap(e -> if(e.2 = %zu, e.3, 0.), c_%zu)) AS y_%zu", en,
                      m, m);
    ab_ch_appendf(&q->s, &q->len,
                  ", arrayPopBack(arrayPushFront(y_%zu, 0.)) AS py_%zu,"
                  " arrayMap((a, b) -> a - b, y_%zu, py_%zu) AS sy_%zu,"
                  " arrayMap((a, b) -> a * a - b * b, y_%zu, py_%zu) AS syy_%zu",
                  m, m, m, m, m, m, m, m);
    if (!ratio) {
        ab_ch_appendf(&q->s, &q->len, ", arrayMap(z -> x_%zu * z, sy_%zu) AS sxy_%zu", m, m, m);
        return;
    }
    ab_ch_appendf(&q->s, &q->len,
                  ", arrayCumSum(arrayMap(e -> if(e.2 = %zu, e.3, 0.), c_%zu)) AS cd_%zu,"
                  " arrayPopBack(arrayPushFront(cd_%zu, 0.)) AS pd_%zu,"
                  " arrayMap((a, b) -> a - b, cd_%zu, pd_%zu) AS sd_%zu,"
                  " arrayMap((a, b) -> a * a - b * b, cd_%zu, pd_%zu) AS sdd_%zu,"
                  " arrayMap((a, b, c, e) -> a * c - b * e, y_%zu, py_%zu, cd_%zu, pd_%zu)"
                  " AS sxy_%zu",
                  dn, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m);
}

/* Adds a metric's sumMap of (day, sy, syy[, sd, sdd], sxy) to the cells of variant v. */
static void add_increments(struct analyze_agg *a, const struct analyze_experiment_def *d,
                           size_t m, const char *v, const json_t *inc)
{
    int ratio = d->metrics[m].type == ANALYZE_RATIO;
    const json_t *days = json_array_get(inc, 0);
    for (size_t j = 0; j < json_array_size(days); j++) {
        struct analyze_sums *c = analyze_agg_at(a, d, m, v, integer_at(days, j));
        if (c == NULL)
            continue;
        c->sum_y += number_at(json_array_get(inc, 1), j);
        c->sum_yy += number_at(json_array_get(inc, 2), j);
        if (ratio) {
            c->sum_x += number_at(json_array_get(inc, 3), j);
            c->sum_xx += number_at(json_array_get(inc, 4), j);
        }
        c->sum_xy += number_at(json_array_get(inc, ratio ? 5 : 3), j);
    }
}

/*
 * The whole experiment in one query over one read of its events, without a join and without a
 * global dedup; three levels from the inside out:
 *  1. per unit: the first and last exposure (t0, t1) and the variant (multi when it saw two),
 *     and its metric events as parallel arrays (hash of the id, metric code, time, value);
 *  2. the unit's distinct events (a re-sent row has the same id and metric: arrayEnumerateUniq
 *     keeps the first), as (ts, code, value) sorted by time, then each metric's columns
 *     (metric_columns);
 *  3. summed per (variant, multi, day of t0): the units, the covariate sums and, by sumMap, each
 *     metric's changes per day.
 * ClickHouse 18.16 resolves a lambda's use of another column only when that column is also used
 * outside a lambda at the same level: t0 is (the day d0), x_m is (the sums of level 3).
 */
static enum ab_err fill(struct ab_ch *ch, const char *table, const struct analyze_experiment_def *d,
                        int64_t through, struct analyze_agg *a, struct ab_errinfo *ei)
{
    struct q q = {NULL, 0};
    ab_ch_appendf(&q.s, &q.len, "SELECT v, multi, d0, count() AS n, max(t1) AS last");
    for (size_t m = 0; m < d->nmetrics; m++) {
        ab_ch_appendf(&q.s, &q.len,
                      ", sum(x_%zu) AS sx_%zu, sum(x_%zu * x_%zu) AS sxx_%zu,"
                      " sumMap(k_%zu, sy_%zu, syy_%zu",
                      m, m, m, m, m, m, m, m);
        if (d->metrics[m].type == ANALYZE_RATIO)
            ab_ch_appendf(&q.s, &q.len, ", sd_%zu, sdd_%zu", m, m);
        ab_ch_appendf(&q.s, &q.len, ", sxy_%zu) AS inc_%zu, max(l_%zu) AS last_%zu", m, m, m, m);
    }
    ab_ch_appendf(&q.s, &q.len, " FROM (SELECT v, multi, t1, t0, intDiv(t0 - %lld, %lld) AS d0",
                  (long long)d->phase_start_ms, (long long)ANALYZE_DAY_MS);
    const char **names = ab_mem_calloc(2 * d->nmetrics + 1, sizeof(*names));
    size_t nn = metric_names(d, names, 2 * d->nmetrics + 1);
    for (size_t m = 0; m < d->nmetrics; m++)
        metric_columns(&q, d, m, names, nn);
    ab_ch_appendf(&q.s, &q.len,
                  " FROM (SELECT v, multi, t0, t1, arraySort(arrayFilter((e, k) -> k = 1,"
                  " arrayMap((a, b, c) -> (a, b, c), tss, codes, vals),"
                  " arrayEnumerateUniq(ids, codes))) AS ev FROM ("
                  "SELECT unit, minIf(ts, type = 'exposure') AS t0,"
                  " maxIf(ts, type = 'exposure') AS t1, minIf(variant, type = 'exposure') AS v,"
                  " toUInt8(v != maxIf(variant, type = 'exposure')) AS multi,"
                  " groupArrayIf(cityHash64(id), type = 'metric') AS ids,"
                  " groupArrayIf(toUInt8(indexOf(");
    names_literal(&q, names, nn);
    free(names);
    ab_ch_appendf(&q.s, &q.len,
                  ", metric)), type = 'metric') AS codes,"
                  " groupArrayIf(ts, type = 'metric') AS tss,"
                  " groupArrayIf(value, type = 'metric') AS vals");
    experiment_events(&q, table, d, through);
    ab_ch_appendf(&q.s, &q.len,
                  " GROUP BY unit HAVING countIf(type = 'exposure') > 0))) GROUP BY v, multi, d0");
    json_t *rows;
    enum ab_err rc = run(ch, &q, &rows, ei);
    if (rc != AB_OK)
        return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        int64_t count = integer(row, "n"), last = integer(row, "last");
        if (last > a->data_through_ms)
            a->data_through_ms = last;
        const char *v = json_string_value(json_object_get(row, "v"));
        int vi = analyze_variant_index(d, v);
        if (integer(row, "multi")) {
            a->multiple_exposures += count;
            continue;
        }
        if (vi < 0) {
            a->unknown_variant += count;
            continue;
        }
        a->units[vi] += count;
        for (size_t m = 0; m < d->nmetrics; m++) {
            char key[32];
            struct analyze_sums *c = analyze_agg_at(a, d, m, v, integer(row, "d0"));
            if (c != NULL) {
                c->n += (double)count;
                snprintf(key, sizeof key, "sx_%zu", m);
                c->sum_x += num(row, key);
                snprintf(key, sizeof key, "sxx_%zu", m);
                c->sum_xx += num(row, key);
            }
            snprintf(key, sizeof key, "inc_%zu", m);
            add_increments(a, d, m, v, json_object_get(row, key));
            snprintf(key, sizeof key, "last_%zu", m);
            int64_t counted_last = integer(row, key);
            if (counted_last > a->data_through_ms)
                a->data_through_ms = counted_last;
        }
    }
    json_decref(rows);
    return AB_OK;
}

enum ab_err analyze_ch_aggregate(struct ab_ch *const *shards, size_t nshards, const char *table,
                                 const struct analyze_experiment_def *d, int64_t through,
                                 struct analyze_agg **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct analyze_agg *a = analyze_agg_new(d, &through);
    /* every fill adds to the cells: the shards' sums add up to the whole's */
    enum ab_err rc = AB_OK;
    for (size_t s = 0; s < nshards && rc == AB_OK; s++)
        rc = fill(shards[s], table, d, through, a, ei);
    for (size_t m = 0; m < d->nmetrics && rc == AB_OK; m++)
        analyze_agg_accumulate(a, m);
    if (rc == AB_OK)
        *out = a;
    else
        analyze_agg_free(a);
    return rc;
}
