/*
 * Every ClickHouse statement of the analysis: sql.c's aggregation (first exposure per unit,
 * exclusion of units with two variants, metric values within the conversion window, the
 * pre-exposure covariate, ratio cross sums, per (unit, day) changes of the running sums) written
 * for ClickHouse 18.16, which has neither window functions nor common table expressions nor bound
 * parameters. The running sums per unit come from arrays instead of a window: each unit's daily
 * totals are gathered with groupArray, sorted by day (arraySort of (day, ...) tuples), summed
 * with arrayCumSum and unfolded again with ARRAY JOIN. Metric events are deduplicated on their
 * id (the forwarder may have stored a re-sent row twice until ClickHouse merges it); exposures
 * need no dedup (first exposure and the variant test are min/max). Literals are quoted with
 * ab_ch_append_quoted. The results come back as JSONEachRow and fill the same struct analyze_agg
 * the SQLite path does, so the statistics (results.c) are shared.
 */
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

static int64_t integer(const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)json_number_value(v);
}

/* The exposures of the phase: WHERE clause shared by the unit queries. */
static void exposures_where(struct q *q, const char *table, const struct analyze_experiment_def *d,
                            int64_t through)
{
    ab_ch_appendf(&q->s, &q->len, " FROM %s WHERE type = 'exposure' AND experiment = ", table);
    ab_ch_append_quoted(&q->s, &q->len, d->key);
    ab_ch_appendf(&q->s, &q->len, " AND ts >= %lld AND ts < %lld", (long long)d->phase_start_ms,
                  (long long)through);
}

/* (u, t0, v): each analysed unit (one variant only), its first exposure and variant. */
static void units(struct q *q, const char *table, const struct analyze_experiment_def *d,
                  int64_t through)
{
    ab_ch_appendf(&q->s, &q->len, "(SELECT unit AS u, min(ts) AS t0, min(variant) AS v");
    exposures_where(q, table, d, through);
    ab_ch_appendf(&q->s, &q->len, " GROUP BY unit HAVING min(variant) = max(variant))");
}

/* (id, u, mt, t, val): metric events named a (or b, when not NULL) before through, one per id. */
static void metric_events(struct q *q, const char *table, const char *a, const char *b,
                          int64_t through)
{
    ab_ch_appendf(&q->s, &q->len,
                  "(SELECT id, any(unit) AS u, any(metric) AS mt, any(ts) AS t, any(value) AS val"
                  " FROM %s WHERE type = 'metric' AND metric IN (",
                  table);
    ab_ch_append_quoted(&q->s, &q->len, a);
    if (b != NULL) {
        ab_ch_appendf(&q->s, &q->len, ", ");
        ab_ch_append_quoted(&q->s, &q->len, b);
    }
    ab_ch_appendf(&q->s, &q->len, ") AND ts < %lld GROUP BY id)", (long long)through);
}

/* (u, x): the covariate of metric m, each unit's value in the lookback before its exposure. */
static void covariate(struct q *q, const char *table, const struct analyze_experiment_def *d,
                      const struct analyze_metric_def *m, int64_t through)
{
    ab_ch_appendf(&q->s, &q->len, "(SELECT u, if(%d, 1., sum(val)) AS x FROM ",
                  m->type == ANALYZE_BINOMIAL);
    metric_events(q, table, m->event, NULL, through);
    ab_ch_appendf(&q->s, &q->len, " ALL INNER JOIN ");
    units(q, table, d, through);
    ab_ch_appendf(&q->s, &q->len, " USING u WHERE t >= t0 - %lld AND t < t0 GROUP BY u)",
                  (long long)ANALYZE_CUPED_LOOKBACK_MS);
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

static enum ab_err fill_units(struct ab_ch *ch, const char *table,
                              const struct analyze_experiment_def *d, int64_t through,
                              struct analyze_agg *a, struct ab_errinfo *ei)
{
    struct q q = {NULL, 0};
    ab_ch_appendf(&q.s, &q.len,
                  "SELECT v, multi, count() AS n, max(t1) AS last FROM (SELECT unit, max(ts) AS t1,"
                  " min(variant) AS v, toUInt8(min(variant) != max(variant)) AS multi");
    exposures_where(&q, table, d, through);
    ab_ch_appendf(&q.s, &q.len, " GROUP BY unit) GROUP BY v, multi");
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
        int v = analyze_variant_index(d, json_string_value(json_object_get(row, "v")));
        if (integer(row, "multi"))
            a->multiple_exposures += count;
        else if (v < 0)
            a->unknown_variant += count;
        else
            a->units[v] += count;
    }
    json_decref(rows);
    return AB_OK;
}

/* Units entering each (variant, day), with their covariate sums. */
static enum ab_err fill_entries(struct ab_ch *ch, const char *table,
                                const struct analyze_experiment_def *d, size_t metric,
                                int64_t through, struct analyze_agg *a, struct ab_errinfo *ei)
{
    const struct analyze_metric_def *m = &d->metrics[metric];
    struct q q = {NULL, 0};
    if (a->has_covariate[metric]) {
        ab_ch_appendf(&q.s, &q.len,
                      "SELECT v, intDiv(t0 - %lld, %lld) AS day, count() AS n, sum(x) AS sx,"
                      " sum(x * x) AS sxx FROM ",
                      (long long)d->phase_start_ms, ANALYZE_DAY_MS);
        units(&q, table, d, through);
        ab_ch_appendf(&q.s, &q.len, " ANY LEFT JOIN ");
        covariate(&q, table, d, m, through);
        ab_ch_appendf(&q.s, &q.len, " USING u GROUP BY v, day");
    } else {
        ab_ch_appendf(&q.s, &q.len,
                      "SELECT v, intDiv(t0 - %lld, %lld) AS day, count() AS n, 0. AS sx,"
                      " 0. AS sxx FROM ",
                      (long long)d->phase_start_ms, ANALYZE_DAY_MS);
        units(&q, table, d, through);
        ab_ch_appendf(&q.s, &q.len, " GROUP BY v, day");
    }
    json_t *rows;
    enum ab_err rc = run(ch, &q, &rows, ei);
    if (rc != AB_OK)
        return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        struct analyze_sums *c = analyze_agg_at(
            a, d, metric, json_string_value(json_object_get(row, "v")), integer(row, "day"));
        if (c == NULL)
            continue;
        c->n += (double)integer(row, "n");
        c->sum_x += num(row, "sx");
        c->sum_xx += num(row, "sxx");
    }
    json_decref(rows);
    return AB_OK;
}

/*
 * The daily changes of the metric's sums (see sql.c fill_increments): per (unit, day) the
 * increments dn (numerator) and dd (denominator), their running sums cn and cd per unit, the
 * values y = f(cn) and py = f(cn - dn) after and before that day, summed per (variant, day).
 */
static enum ab_err fill_increments(struct ab_ch *ch, const char *table,
                                   const struct analyze_experiment_def *d, size_t metric,
                                   int64_t through, struct analyze_agg *a, struct ab_errinfo *ei)
{
    const struct analyze_metric_def *m = &d->metrics[metric];
    int binom = m->type == ANALYZE_BINOMIAL, ratio = m->type == ANALYZE_RATIO;
    struct q q = {NULL, 0};
    ab_ch_appendf(&q.s, &q.len,
                  "SELECT v, day, sum(y - py) AS sy, sum(y * y - py * py) AS syy,"
                  " sum(cd - pd) AS sd, sum(cd * cd - pd * pd) AS sdd, sum(%s) AS sxy,"
                  " max(last) AS lastmax FROM ("
                  "SELECT u, v, day, last, cd, cd - dd AS pd,"
                  " if(%d, toFloat64(cn > 0), cn) AS y, if(%d, toFloat64(cn - dn > 0), cn - dn)"
                  " AS py FROM ("
                  "SELECT u, v, arraySort(groupArray((day0, dn0, dd0, last0))) AS a FROM ("
                  "SELECT u, v, intDiv(t - %lld, %lld) AS day0, max(t) AS last0,"
                  " sumIf(if(%d, 1., val), mt = ",
                  ratio ? "y * cd - py * pd" : "x * (y - py)", binom, binom,
                  (long long)d->phase_start_ms, ANALYZE_DAY_MS, binom);
    ab_ch_append_quoted(&q.s, &q.len, m->event);
    ab_ch_appendf(&q.s, &q.len, ") AS dn0, ");
    if (ratio) {
        ab_ch_appendf(&q.s, &q.len, "sumIf(val, mt = ");
        ab_ch_append_quoted(&q.s, &q.len, m->denominator_event);
        ab_ch_appendf(&q.s, &q.len, ") AS dd0 FROM ");
    } else {
        ab_ch_appendf(&q.s, &q.len, "0. AS dd0 FROM ");
    }
    metric_events(&q, table, m->event, ratio ? m->denominator_event : NULL, through);
    ab_ch_appendf(&q.s, &q.len, " ALL INNER JOIN ");
    units(&q, table, d, through);
    ab_ch_appendf(&q.s, &q.len,
                  " USING u WHERE t >= t0 AND (%lld = 0 OR t < t0 + %lld) GROUP BY u, v, day0)"
                  " GROUP BY u, v)"
                  " ARRAY JOIN arrayMap(z -> tupleElement(z, 1), a) AS day,"
                  " arrayMap(z -> tupleElement(z, 2), a) AS dn,"
                  " arrayMap(z -> tupleElement(z, 3), a) AS dd,"
                  " arrayMap(z -> tupleElement(z, 4), a) AS last,"
                  " arrayCumSum(arrayMap(z -> tupleElement(z, 2), a)) AS cn,"
                  " arrayCumSum(arrayMap(z -> tupleElement(z, 3), a)) AS cd)",
                  (long long)m->window_ms, (long long)m->window_ms);
    if (!ratio) {
        ab_ch_appendf(&q.s, &q.len, " ANY LEFT JOIN ");
        covariate(&q, table, d, m, through);
        ab_ch_appendf(&q.s, &q.len, " USING u");
    }
    ab_ch_appendf(&q.s, &q.len, " GROUP BY v, day");
    json_t *rows;
    enum ab_err rc = run(ch, &q, &rows, ei);
    if (rc != AB_OK)
        return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        struct analyze_sums *c = analyze_agg_at(
            a, d, metric, json_string_value(json_object_get(row, "v")), integer(row, "day"));
        if (c == NULL)
            continue;
        c->sum_y += num(row, "sy");
        c->sum_yy += num(row, "syy");
        if (ratio) {
            c->sum_x += num(row, "sd");
            c->sum_xx += num(row, "sdd");
        }
        c->sum_xy += num(row, "sxy");
        int64_t last = integer(row, "lastmax");
        if (last > a->data_through_ms)
            a->data_through_ms = last;
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
        rc = fill_units(shards[s], table, d, through, a, ei);
    for (size_t m = 0; m < d->nmetrics && rc == AB_OK; m++) {
        for (size_t s = 0; s < nshards && rc == AB_OK; s++) {
            rc = fill_entries(shards[s], table, d, m, through, a, ei);
            if (rc == AB_OK)
                rc = fill_increments(shards[s], table, d, m, through, a, ei);
        }
        if (rc == AB_OK)
            analyze_agg_accumulate(a, m);
    }
    if (rc == AB_OK)
        *out = a;
    else
        analyze_agg_free(a);
    return rc;
}
