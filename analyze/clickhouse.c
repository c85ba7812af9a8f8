/*
 * Every ClickHouse statement of the analysis: the same sufficient statistics as sql.c and units.c
 * (first exposure per unit, exclusion of units with two variants, metric values within the
 * conversion window, the pre-exposure covariate, ratio cross sums, the per (unit, day) changes of
 * the running sums), written for ClickHouse 18.16, which has neither window functions nor common
 * table expressions nor bound parameters, and two queries per experiment: the unit counts per
 * variant (fill_units) and every metric at once (fill_metrics), each reading the experiment's rows
 * once. Metric events are deduplicated per unit (the forwarder may have stored a re-sent row twice
 * until ClickHouse merges it), never by a hash of every event id. Literals are quoted with
 * ab_ch_append_quoted. The results come back as JSONEachRow and fill the same struct analyze_agg
 * the SQLite path does, so the statistics (results.c) are shared; every fill adds to the cells,
 * so the shards of a cluster are aggregated one after the other into one agg.
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
    ab_ch_appendf(&q->s, &q->len, "[");
    for (size_t i = 0; i < n; i++) {
        ab_ch_appendf(&q->s, &q->len, i > 0 ? ", " : "");
        ab_ch_append_quoted(&q->s, &q->len, names[i]);
    }
    ab_ch_appendf(&q->s, &q->len, "]");
}

/* Appends [code, ...] per metric of its event (sel 0) or denominator (sel 1; 0 when none). */
static void codes_array(struct q *q, const struct analyze_experiment_def *d,
                        const char *const names[], size_t n, int sel)
{
    ab_ch_appendf(&q->s, &q->len, "[");
    for (size_t m = 0; m < d->nmetrics; m++) {
        const struct analyze_metric_def *md = &d->metrics[m];
        size_t c = sel == 0                    ? code_of(names, n, md->event)
                   : md->type == ANALYZE_RATIO ? code_of(names, n, md->denominator_event)
                                               : 0;
        ab_ch_appendf(&q->s, &q->len, "%stoUInt8(%zu)", m > 0 ? ", " : "", c);
    }
    ab_ch_appendf(&q->s, &q->len, "]");
}

/* Appends [metric 0's, metric 1's, ...] of a property: 0 binomial, 1 ratio (UInt8 flags), 2 the
 * conversion window (Int64 ms, 0 = none). */
static void ints_array(struct q *q, const struct analyze_experiment_def *d, int what)
{
    ab_ch_appendf(&q->s, &q->len, "[");
    for (size_t m = 0; m < d->nmetrics; m++) {
        const struct analyze_metric_def *md = &d->metrics[m];
        long long v = what == 0   ? md->type == ANALYZE_BINOMIAL
                      : what == 1 ? md->type == ANALYZE_RATIO
                                  : (long long)md->window_ms;
        ab_ch_appendf(&q->s, &q->len, "%sto%s(%lld)", m > 0 ? ", " : "",
                      what == 2 ? "Int64" : "UInt8", v);
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
    ab_ch_appendf(&q->s, &q->len,
                  " AND ts >= %lld AND ts < %lld) OR (type = 'metric' AND ts < %lld AND metric"
                  " IN (",
                  (long long)d->phase_start_ms, (long long)through, (long long)through);
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

/*
 * Every metric of the experiment in one query over one read of its events, without a join and
 * without a global dedup (levels from the inside out):
 *  1. per unit: its first exposure t0 and variant v (units with two variants left out) and the
 *     set of its distinct metric events, groupUniqArray of (id, metric, ts, value): a re-sent
 *     row is the same tuple, so duplicates collapse within the unit's own small set;
 *  2. per (unit, metric) (ARRAY JOIN of the metric's index mi; its names and flags are array
 *     literals indexed by mi); 3. per (unit, metric, event) (LEFT ARRAY JOIN, so a unit without
 *     events still enters): whether the event counts (its day) or is in the covariate's lookback;
 *  4. per (unit, metric, day): the day's sums; 5. per (unit, metric): the covariate x and the
 *     sorted days, with a first element for the unit's entry (day -1);
 *  6. per (unit, metric, day) again (ARRAY JOIN, running sums by arrayCumSum) and 7. summed per
 *     (metric, kind, variant, day): kind 0 the entries (n, covariate sums on the first exposure's
 *     day), kind 1 the changes of the running sums, as sql.c's fill_increments.
 * ClickHouse 18.16 has no window functions, and its lambdas cannot use a subquery's other
 * columns, so every lambda here reads only its own arguments.
 */
static enum ab_err fill_metrics(struct ab_ch *ch, const char *table,
                                const struct analyze_experiment_def *d, int64_t through,
                                struct analyze_agg *a, struct ab_errinfo *ei)
{
    long long start = (long long)d->phase_start_ms, day = ANALYZE_DAY_MS;
    long long look = (long long)ANALYZE_CUPED_LOOKBACK_MS;
    struct q q = {NULL, 0};
    ab_ch_appendf(
        &q.s, &q.len,
        /* 7 */
        "SELECT mi, kind, v, dday, sum(r_n) AS n, sum(r_sx) AS sx, sum(r_sxx) AS sxx,"
        " sum(r_sy) AS sy, sum(r_syy) AS syy, sum(r_sd) AS sd, sum(r_sdd) AS sdd,"
        " sum(r_sxy) AS sxy, max(last) AS lastmax"
        " FROM (SELECT mi, v, toUInt8(day0 >= 0) AS kind,"
        " if(kind, day0, intDiv(t0 - %lld, %lld)) AS dday, toFloat64(kind = 0) AS r_n,"
        " if(kind, 0., x) AS r_sx, if(kind, 0., x * x) AS r_sxx,"
        " if(bn, toFloat64(cn > 0), cn) AS y, if(bn, toFloat64(cn - dn > 0), cn - dn) AS py,"
        " cd - dd AS pd, y - py AS r_sy, y * y - py * py AS r_syy, cd - pd AS r_sd,"
        " cd * cd - pd * pd AS r_sdd, if(rt, y * cd - py * pd, x * (y - py)) AS r_sxy, last FROM ("
        /* 6 */
        "SELECT mi, v, t0, x, bn, rt, ds FROM ("
        /* 5 */
        "SELECT mi, v, t0, any(binom) AS bn, any(ratio) AS rt,"
        " if(rt, 0., if(bn, toFloat64(sum(cv0) > 0), sum(cv0))) AS x,"
        " arrayConcat([(toInt64(-1), 0., 0., toInt64(0))],"
        " arraySort(groupArrayIf((day0, dn0, dd0, last0), day0 >= 0))) AS ds FROM ("
        /* 4 */
        "SELECT uid, v, t0, mi, binom, ratio, day0, sum(dn1) AS dn0, sum(dd1) AS dd0,"
        " max(last1) AS last0, sum(cv1) AS cv0 FROM ("
        /* 3 */
        "SELECT uid, v, t0, mi, binom, ratio, tupleElement(e, 2) AS mt, tupleElement(e, 3) AS t,"
        " tupleElement(e, 4) AS val, (mt = en OR (ratio AND mt = dnm)) AND mt != 0 AND t >= t0"
        " AND (win = 0 OR t < t0 + win) AS counted,"
        " if(counted, intDiv(t - %lld, %lld), toInt64(-1)) AS day0,"
        " if(counted AND mt = en, if(binom, 1., val), 0.) AS dn1,"
        " if(counted AND ratio AND mt = dnm, val, 0.) AS dd1, if(counted, t, toInt64(0)) AS last1,"
        " if(mt = en AND mt != 0 AND t >= t0 - %lld AND t < t0, if(binom, 1., val), 0.) AS cv1"
        " FROM ("
        /* 2 */
        "SELECT uid, v, t0, e, mi, ",
        start, day, start, day, look);
    const char **names = ab_mem_calloc(2 * d->nmetrics + 1, sizeof(*names));
    size_t nn = metric_names(d, names, 2 * d->nmetrics + 1);
    codes_array(&q, d, names, nn, 0);
    ab_ch_appendf(&q.s, &q.len, "[mi] AS en, ");
    codes_array(&q, d, names, nn, 1);
    ab_ch_appendf(&q.s, &q.len, "[mi] AS dnm, ");
    ints_array(&q, d, 0);
    ab_ch_appendf(&q.s, &q.len, "[mi] AS binom, ");
    ints_array(&q, d, 1);
    ab_ch_appendf(&q.s, &q.len, "[mi] AS ratio, ");
    ints_array(&q, d, 2);
    ab_ch_appendf(&q.s, &q.len,
                  "[mi] AS win FROM (SELECT uid, v, t0, e FROM ("
                  /* 1 */
                  "SELECT rowNumberInAllBlocks() AS uid, minIf(ts, type = 'exposure') AS t0,"
                  " minIf(variant, type = 'exposure') AS v,"
                  " groupUniqArrayIf((id, toUInt8(indexOf(");
    names_literal(&q, names, nn);
    ab_ch_appendf(&q.s, &q.len, ", metric)), ts, value), type = 'metric') AS ev");
    experiment_events(&q, table, d, through);
    ab_ch_appendf(&q.s, &q.len,
                  " GROUP BY unit HAVING countIf(type = 'exposure') > 0 AND"
                  " minIf(variant, type = 'exposure') = maxIf(variant, type = 'exposure'))"
                  " LEFT ARRAY JOIN ev AS e) ARRAY JOIN arrayEnumerate(");
    ints_array(&q, d, 0);
    ab_ch_appendf(&q.s, &q.len,
                  ") AS mi))"
                  " GROUP BY uid, v, t0, mi, binom, ratio, day0)"
                  " GROUP BY uid, v, t0, mi)) ARRAY JOIN"
                  " arrayMap(z -> tupleElement(z, 1), ds) AS day0,"
                  " arrayMap(z -> tupleElement(z, 2), ds) AS dn,"
                  " arrayMap(z -> tupleElement(z, 3), ds) AS dd,"
                  " arrayMap(z -> tupleElement(z, 4), ds) AS last,"
                  " arrayCumSum(arrayMap(z -> tupleElement(z, 2), ds)) AS cn,"
                  " arrayCumSum(arrayMap(z -> tupleElement(z, 3), ds)) AS cd)"
                  " GROUP BY mi, kind, v, dday");
    free(names);
    json_t *rows;
    enum ab_err rc = run(ch, &q, &rows, ei);
    if (rc != AB_OK)
        return rc;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        int64_t mi = integer(row, "mi");
        if (mi < 1 || (size_t)mi > d->nmetrics)
            continue;
        size_t m = (size_t)mi - 1;
        struct analyze_sums *c = analyze_agg_at(
            a, d, m, json_string_value(json_object_get(row, "v")), integer(row, "dday"));
        if (c == NULL)
            continue;
        if (integer(row, "kind") == 0) {
            c->n += num(row, "n");
            c->sum_x += num(row, "sx");
            c->sum_xx += num(row, "sxx");
            continue;
        }
        c->sum_y += num(row, "sy");
        c->sum_yy += num(row, "syy");
        if (d->metrics[m].type == ANALYZE_RATIO) {
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
    for (size_t s = 0; s < nshards && rc == AB_OK; s++)
        rc = fill_metrics(shards[s], table, d, through, a, ei);
    for (size_t m = 0; m < d->nmetrics && rc == AB_OK; m++)
        analyze_agg_accumulate(a, m);
    if (rc == AB_OK)
        *out = a;
    else
        analyze_agg_free(a);
    return rc;
}
