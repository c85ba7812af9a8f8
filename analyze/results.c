/*
 * From an experiment's aggregated sufficient statistics to its results JSON
 * (shared results.schema.json, copied in tests/data): per metric the variants' moments, each
 * treatment's comparison with the baseline (fixed-horizon and always-valid, absolute and
 * relative), the decision, and the day-by-day series of the relative lift's confidence sequence.
 * Pure: the statistics are stats.c's; no I/O. docs/statistics.md explains every choice here.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "abacus/mem.h"
#include "analyze_int.h"

#define SRM_ALPHA 0.001

static const char *const TYPE_NAMES[] = {"binomial", "mean", "ratio"};
static const char *const ROLE_NAMES[] = {"goal", "guardrail", "secondary"};
static const char *const CORRECTION_NAMES[] = {"none", "holm", "bh"};

json_t *analyze_rfc3339(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *date_of(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[16];
    strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
    return json_string(buf);
}

/* A number, or null when it is not finite (never NaN or Inf in the output). */
static json_t *number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *pair(int ok, double lo, double hi)
{
    return ok ? json_pack("[o,o]", number(lo), number(hi)) : json_pack("[n,n]");
}

/* How one metric is analysed on one day: CUPED's theta and the covariate mean, when used. */
struct day_model {
    int cuped;
    double theta, mean_x;
};

static struct day_model model_of(const struct analyze_agg *agg, size_t metric, size_t day)
{
    struct day_model dm = {0, 0, 0};
    if (!agg->has_covariate[metric])
        return dm;
    struct analyze_sums arms[ANALYZE_MAX_VARIANTS];
    double n = 0, sx = 0;
    for (size_t v = 0; v < agg->nvariants; v++) {
        arms[v] = analyze_agg_cell(agg, metric, v, day)->sums;
        n += arms[v].n;
        sx += arms[v].sum_x;
    }
    if (n > 0 && analyze_cuped_theta(arms, agg->nvariants, &dm.theta) == 0) {
        dm.cuped = 1;
        dm.mean_x = sx / n;
    }
    return dm;
}

static int moments_of(const struct analyze_metric_def *m, const struct analyze_sums *s,
                      const struct day_model *dm, struct analyze_moments *out)
{
    if (m->type == ANALYZE_RATIO)
        return analyze_ratio_moments(s, out);
    if (dm->cuped)
        *out = analyze_cuped_moments(s, dm->theta, dm->mean_x);
    else if (m->type == ANALYZE_BINOMIAL)
        *out = analyze_proportion_moments(s);
    else
        *out = analyze_mean_moments(s);
    return 0;
}

/*
 * Variant v against the baseline on one day: absolute and relative estimates with their
 * sequential analysis and, when full (the last day), the fixed-horizon test too. Binomial metrics
 * without CUPED use the two-proportion z-test, everything else Welch's t-test.
 */
static void compare(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                    size_t metric, size_t v, size_t day, double alpha, int full,
                    struct analyze_estimate *abs_out, struct analyze_estimate *rel_out)
{
    const struct analyze_metric_def *m = &def->metrics[metric];
    struct day_model dm = model_of(agg, metric, day);
    struct analyze_moments a, b;
    memset(abs_out, 0, sizeof(*abs_out));
    memset(rel_out, 0, sizeof(*rel_out));
    if (moments_of(m, &analyze_agg_cell(agg, metric, 0, day)->sums, &dm, &a) != 0 ||
        moments_of(m, &analyze_agg_cell(agg, metric, v, day)->sums, &dm, &b) != 0)
        return;
    for (int rel = 0; rel < 2; rel++) {
        struct analyze_estimate *e = rel ? rel_out : abs_out;
        if (!full)
            analyze_difference(&a, &b, rel, e);
        else if (m->type == ANALYZE_BINOMIAL && !dm.cuped)
            analyze_ztest_proportions(&a, &b, rel, alpha, e);
        else
            analyze_welch(&a, &b, rel, alpha, e);
        analyze_sequential(a.n + b.n, (double)def->nstar, alpha, e);
    }
}

static json_t *estimate_json(const struct analyze_estimate *e, double p_seq_min)
{
    if (!e->ok)
        return json_pack("{s:n, s:n, s:[n,n], s:n, s:[n,n], s:n}", "estimate", "se", "ci_fixed",
                         "p_value_fixed", "ci_sequential", "p_value_sequential");
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "estimate", number(e->estimate), "se",
                     number(e->se), "ci_fixed", pair(1, e->ci_lo, e->ci_hi), "p_value_fixed",
                     number(e->p), "ci_sequential", pair(1, e->seq_lo, e->seq_hi),
                     "p_value_sequential", number(p_seq_min));
}

static void run_comparison(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                           double alpha, struct analyze_comparison *c)
{
    c->p_abs_min = 1;
    c->p_rel_min = 1;
    c->series = ab_mem_calloc(agg->ndays, sizeof(*c->series));
    for (size_t day = 0; day < agg->ndays; day++) {
        compare(def, agg, c->metric, c->variant, day, alpha, day + 1 == agg->ndays, &c->abs,
                &c->rel);
        if (c->abs.ok)
            c->p_abs_min = fmin(c->p_abs_min, c->abs.p_seq);
        if (c->rel.ok)
            c->p_rel_min = fmin(c->p_rel_min, c->rel.p_seq);
        c->series[day] = (struct analyze_point){
            c->rel.ok,
            analyze_agg_cell(agg, c->metric, 0, day)->sums.n +
                analyze_agg_cell(agg, c->metric, c->variant, day)->sums.n,
            c->rel.estimate, c->rel.seq_lo, c->rel.seq_hi, c->p_rel_min};
    }
    /* c->abs and c->rel now hold the last day: the results as of data_through */
    c->p_adjusted = c->p_rel_min;
}

static const char *decision(const struct analyze_comparison *c, int srm_mismatch, double alpha)
{
    if (srm_mismatch)
        return "srm_blocked";
    if (!c->rel.ok)
        return "insufficient_data";
    if (c->p_adjusted < alpha)
        return c->rel.estimate > 0 ? "significant_positive" : "significant_negative";
    return "inconclusive";
}

static json_t *variants_json(const struct analyze_experiment_def *def,
                             const struct analyze_agg *agg, size_t metric)
{
    const struct analyze_metric_def *m = &def->metrics[metric];
    size_t last = agg->ndays - 1;
    struct day_model raw = {0, 0, 0}; /* the variants table shows unadjusted values */
    json_t *arr = json_array();
    for (size_t v = 0; v < agg->nvariants; v++) {
        const struct analyze_sums *s = &analyze_agg_cell(agg, metric, v, last)->sums;
        struct analyze_moments mo;
        if (moments_of(m, s, &raw, &mo) != 0)
            mo = (struct analyze_moments){s->n, 0, 0};
        json_array_append_new(
            arr, json_pack("{s:s, s:I, s:o, s:o, s:o, s:o}", "variant", def->variants[v], "n",
                           (json_int_t)s->n, "sum", number(s->sum_y), "sum_squares",
                           number(s->sum_yy), "mean", number(mo.mean), "variance",
                           number(mo.var)));
        if (m->type == ANALYZE_RATIO)
            json_object_set_new(json_array_get(arr, v), "denominator_sum", number(s->sum_x));
    }
    return arr;
}

static json_t *srm_json(const struct analyze_experiment_def *def, const struct analyze_computed *c)
{
    json_t *weights = json_object();
    double wsum = 0;
    for (size_t v = 0; v < def->nvariants; v++)
        wsum += def->weights[v];
    for (size_t v = 0; v < def->nvariants; v++)
        json_object_set_new(weights, def->variants[v],
                            number(wsum > 0 ? def->weights[v] / wsum : 0));
    return json_pack("{s:o, s:o, s:b, s:o}", "chi2",
                     c->srm_ok ? number(c->srm_chi2) : json_null(), "p_value",
                     number(c->srm_ok ? c->srm_p : 1), "mismatch", c->srm_mismatch,
                     "expected_weights", weights);
}

void analyze_compute(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                     const struct analyze_options *opt, struct analyze_computed *out)
{
    memset(out, 0, sizeof(*out));
    double observed[ANALYZE_MAX_VARIANTS];
    for (size_t v = 0; v < def->nvariants; v++)
        observed[v] = (double)agg->units[v];
    out->srm_ok =
        analyze_srm(observed, def->weights, def->nvariants, &out->srm_chi2, &out->srm_p) == 0;
    out->srm_mismatch = out->srm_ok && out->srm_p < SRM_ALPHA;

    size_t ntreat = def->nvariants > 1 ? def->nvariants - 1 : 0;
    out->ncomps = def->nmetrics * ntreat;
    out->comps = ab_mem_calloc(out->ncomps + 1, sizeof(*out->comps));
    double *goal_p = ab_mem_calloc(out->ncomps + 1, sizeof(double));
    size_t ngoal = 0;
    for (size_t i = 0; i < out->ncomps; i++) {
        struct analyze_comparison *c = &out->comps[i];
        c->metric = i / ntreat;
        c->variant = i % ntreat + 1;
        run_comparison(def, agg, opt->alpha, c);
        if (def->metrics[c->metric].role == ANALYZE_GOAL)
            goal_p[ngoal++] = c->p_rel_min;
    }
    /* Holm or BH over goal metrics x treatment variants; guardrails and others stand alone */
    if (opt->correction == ANALYZE_CORRECTION_HOLM)
        analyze_holm(goal_p, ngoal, goal_p);
    else if (opt->correction == ANALYZE_CORRECTION_BH)
        analyze_bh(goal_p, ngoal, goal_p);
    size_t g = 0;
    for (size_t i = 0; i < out->ncomps; i++)
        if (def->metrics[out->comps[i].metric].role == ANALYZE_GOAL)
            out->comps[i].p_adjusted = goal_p[g++];
    free(goal_p);
}

void analyze_computed_dispose(struct analyze_computed *c)
{
    for (size_t i = 0; i < c->ncomps; i++)
        free(c->comps[i].series);
    free(c->comps);
    c->comps = NULL;
    c->ncomps = 0;
}

static json_t *series_json(const struct analyze_experiment_def *def,
                           const struct analyze_comparison *c, size_t ndays)
{
    json_t *arr = json_array();
    for (size_t day = 0; day < ndays; day++) {
        const struct analyze_point *p = &c->series[day];
        if (!p->ok) /* a day without a computable lift has no point */
            continue;
        json_t *point = json_object();
        json_object_set_new(point, "date",
                            date_of(def->phase_start_ms + (int64_t)day * ANALYZE_DAY_MS));
        json_object_set_new(point, "variant", json_string(def->variants[c->variant]));
        json_object_set_new(point, "n", json_integer((json_int_t)p->n));
        json_object_set_new(point, "estimate", number(p->estimate));
        json_object_set_new(point, "ci_sequential", pair(1, p->lo, p->hi));
        json_object_set_new(point, "p_value_sequential", number(p->p_min));
        json_array_append_new(arr, point);
    }
    return arr;
}

json_t *analyze_results(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                        const struct analyze_options *opt)
{
    struct analyze_computed cp;
    analyze_compute(def, agg, opt, &cp);
    json_t *units = json_object();
    for (size_t v = 0; v < def->nvariants; v++)
        json_object_set_new(units, def->variants[v], json_integer(agg->units[v]));
    json_t *out = json_pack(
        "{s:s, s:I, s:o, s:f, s:I, s:s, s:{s:o, s:I, s:I}, s:o}", "experiment", def->key, "phase",
        (json_int_t)def->phase, "computed_at", analyze_rfc3339(opt->computed_at_ms), "alpha",
        opt->alpha,
        "sequential_tuning_n", (json_int_t)def->nstar, "correction",
        CORRECTION_NAMES[opt->correction], "units", "by_variant", units, "multiple_exposures",
        (json_int_t)agg->multiple_exposures, "unknown_variant", (json_int_t)agg->unknown_variant,
        "srm", srm_json(def, &cp));
    if (agg->data_through_ms > 0)
        json_object_set_new(out, "data_through", analyze_rfc3339(agg->data_through_ms));

    size_t ntreat = def->nvariants > 1 ? def->nvariants - 1 : 0;
    json_t *metrics = json_array();
    for (size_t m = 0; m < def->nmetrics; m++) {
        const struct analyze_metric_def *md = &def->metrics[m];
        struct day_model dm = model_of(agg, m, agg->ndays - 1);
        json_t *comparisons = json_array(), *series = json_array();
        for (size_t t = 0; t < ntreat; t++) {
            const struct analyze_comparison *c = &cp.comps[m * ntreat + t];
            int adjusted = md->role == ANALYZE_GOAL && opt->correction != ANALYZE_CORRECTION_NONE;
            json_array_append_new(
                comparisons,
                json_pack("{s:s, s:s, s:o, s:o, s:o, s:s}", "variant", def->variants[c->variant],
                          "baseline", def->variants[0], "absolute",
                          estimate_json(&c->abs, c->p_abs_min), "relative",
                          estimate_json(&c->rel, c->p_rel_min), "p_value_adjusted",
                          adjusted && c->rel.ok ? number(c->p_adjusted) : json_null(),
                          "decision", decision(c, cp.srm_mismatch, opt->alpha)));
            json_t *points = series_json(def, c, agg->ndays);
            json_array_extend(series, points);
            json_decref(points);
        }
        json_array_append_new(
            metrics, json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:o}", "metric", md->key,
                               "type", TYPE_NAMES[md->type], "role", ROLE_NAMES[md->role],
                               "direction", md->decrease_is_good ? "decrease" : "increase",
                               "cuped", dm.cuped, "variants", variants_json(def, agg, m),
                               "comparisons", comparisons, "series", series));
    }
    json_object_set_new(out, "metrics", metrics);
    analyze_computed_dispose(&cp);
    return out;
}
