/*
 * Private types of the analysis: an experiment's definition as the analysis needs it (read from
 * the control database), the sufficient statistics the aggregation produces for it from the
 * events store (cumulative per day), and the functions between them. sql.c holds every SQL
 * statement of the analysis; results.c is pure (statistics into the results JSON); analyze.c
 * wires them for `abacus analyze`, the admin API and the report.
 */
#ifndef ABACUS_ANALYZE_INT_H
#define ABACUS_ANALYZE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/db.h"
#include "abacus/err.h"
#include "stats.h"

#define ANALYZE_DAY_MS 86400000LL
#define ANALYZE_MAX_VARIANTS 16
#define ANALYZE_DEFAULT_NSTAR 5000
#define ANALYZE_DEFAULT_ALPHA 0.05
#define ANALYZE_CUPED_LOOKBACK_MS (14 * ANALYZE_DAY_MS) /* pre-exposure window of the covariate */

enum analyze_metric_type { ANALYZE_BINOMIAL, ANALYZE_MEAN, ANALYZE_RATIO };
enum analyze_role { ANALYZE_GOAL, ANALYZE_GUARDRAIL, ANALYZE_SECONDARY };
enum analyze_correction { ANALYZE_CORRECTION_NONE, ANALYZE_CORRECTION_HOLM, ANALYZE_CORRECTION_BH };

struct analyze_metric_def {
    char *key;
    enum analyze_metric_type type;
    enum analyze_role role;
    char *event;             /* numerator event name */
    char *denominator_event; /* ratio metrics only, else NULL */
    int decrease_is_good;    /* direction "decrease" */
    int64_t window_ms;       /* conversion window after the first exposure; 0 = none */
};

struct analyze_experiment_def {
    char *key;
    int64_t phase;
    int64_t phase_start_ms; /* the phase's start; events before it are not analysed */
    int64_t phase_end_ms;   /* when the phase ended, or 0 while it runs */
    size_t nvariants;       /* 1..ANALYZE_MAX_VARIANTS; variant 0 is the baseline */
    char *variants[ANALYZE_MAX_VARIANTS];
    double weights[ANALYZE_MAX_VARIANTS];
    struct analyze_metric_def *metrics;
    size_t nmetrics;
    int64_t nstar;          /* tuning N* of the confidence sequence */
};

void analyze_experiment_def_free(struct analyze_experiment_def *d); /* accepts NULL */

/* Sufficient statistics of one metric for one variant up to the end of one day (cumulative). */
struct analyze_cell {
    struct analyze_sums sums; /* y: value (ratio: numerator); x: CUPED covariate or denominator */
};

/*
 * The aggregation of one experiment: cells[(metric * nvariants + variant) * ndays + day], each
 * cumulative through the end of that day of the phase (day 0 starts at phase_start_ms).
 */
struct analyze_agg {
    size_t nvariants, nmetrics, ndays;
    struct analyze_cell *cells;
    int64_t units[ANALYZE_MAX_VARIANTS]; /* units analysed, per variant, at the last day */
    int64_t multiple_exposures;          /* units exposed to more than one variant (excluded) */
    int64_t unknown_variant;             /* units whose first exposure names no variant of the phase */
    int64_t data_through_ms;             /* latest event time included, 0 when there is none */
    int *has_covariate;                  /* [nmetrics]: CUPED covariate aggregated (not ratio) */
};

static inline struct analyze_cell *analyze_agg_cell(const struct analyze_agg *a, size_t metric,
                                                    size_t variant, size_t day)
{
    return &a->cells[(metric * a->nvariants + variant) * a->ndays + day];
}

void analyze_agg_free(struct analyze_agg *a); /* accepts NULL */

/* The index of variant key v in d (NULL or unknown: -1). Shared by both events stores. */
int analyze_variant_index(const struct analyze_experiment_def *d, const char *v);

/*
 * The sums of metric for variant key v on day of the phase, as a store's row names them, or NULL
 * when the variant is not one of the phase's or the day is outside the aggregation.
 */
struct analyze_sums *analyze_agg_at(const struct analyze_agg *a,
                                    const struct analyze_experiment_def *d, size_t metric,
                                    const char *v, int64_t day);

/*
 * A zeroed aggregation for def as of *through (lowered to the phase's end when the phase ended),
 * with has_covariate set (every metric but ratio). The caller's (analyze_agg_free).
 */
struct analyze_agg *analyze_agg_new(const struct analyze_experiment_def *def, int64_t *through);

/* Turns metric m's daily changes (what the stores fill in) into cumulative cells. */
void analyze_agg_accumulate(struct analyze_agg *a, size_t m);

/* --- units.c: the per-unit join, pure --- */

/*
 * The join of one experiment's events into its sufficient statistics. Feed it every exposure of
 * the experiment, then call analyze_units_end_exposures, then feed it the metric events; rows
 * outside the phase or at/after through_ms are ignored, so a store may filter coarsely. Each
 * unit's first exposure (units with more than one variant key are excluded and counted), its
 * covariate from the lookback window before it, and its metric values after it within the
 * conversion window. analyze_units_finish then fills agg (from analyze_agg_new for the same def
 * and through) with the cumulative statistics per (metric, variant, day). The definition and agg
 * stay the caller's and must outlive the join.
 */
struct analyze_units;
struct analyze_units *analyze_units_new(const struct analyze_experiment_def *def,
                                        struct analyze_agg *agg, int64_t through_ms);
void analyze_units_free(struct analyze_units *j); /* accepts NULL */

/* An exposure of unit (len bytes) to variant (vlen bytes) at ts. AB_ERR_TOO_LARGE past 1 TiB of
 * unit records. */
enum ab_err analyze_units_exposure(struct analyze_units *j, const char *unit, size_t len,
                                   const char *variant, size_t vlen, int64_t ts);

/* Ends the exposures; returns the earliest first exposure (INT64_MAX when there is none): metric
 * events before it minus ANALYZE_CUPED_LOOKBACK_MS cannot count. */
int64_t analyze_units_end_exposures(struct analyze_units *j);

/* A metric event named metric (NUL-terminated) of unit with value at ts. AB_ERR_TOO_LARGE past
 * 2^31-2 closed (unit, metric, day) sums. */
enum ab_err analyze_units_metric(struct analyze_units *j, const char *unit, size_t len,
                                 const char *metric, double value, int64_t ts);

/* Fills the aggregation: unit counts, data_through_ms and every metric's cumulative cells.
 * AB_ERR_TOO_LARGE as analyze_units_metric (events still in its pipeline are applied here). */
enum ab_err analyze_units_finish(struct analyze_units *j);

/* --- sql.c: every statement of the analysis --- */

/*
 * Reads experiment key's definition (current phase, variants, weights, metrics) from the control
 * database into *out (the caller's; analyze_experiment_def_free). AB_ERR_NOT_FOUND when there is
 * no such experiment, AB_ERR_INVALID_FIELD when its phase never started.
 */
enum ab_err analyze_sql_load_def(struct ab_db *control, const char *key,
                                 struct analyze_experiment_def **out, struct ab_errinfo *ei);

/* The keys of the running experiments, sorted (*keys and each key the caller's, free()). */
enum ab_err analyze_sql_running(struct ab_db *control, char ***keys, size_t *n,
                                struct ab_errinfo *ei);

/* An experiment in a report: its key and name (both the caller's, free()). */
struct analyze_day_experiment {
    char *key, *name, *status;
};

/*
 * The experiments whose current phase started before to_ms and had not ended by from_ms, sorted
 * by key (*out the caller's: free each field and the array).
 */
enum ab_err analyze_sql_day_experiments(struct ab_db *control, int64_t from_ms, int64_t to_ms,
                                        struct analyze_day_experiment **out, size_t *n,
                                        struct ab_errinfo *ei);

/*
 * Aggregates the events of def's phase with ts < through_ms from the events database into *out
 * (the caller's; analyze_agg_free): two scans of the events table, the experiment's exposures
 * and then the metrics' events, through the per-unit join of units.c.
 */
enum ab_err analyze_sql_aggregate(struct ab_db *events, const struct analyze_experiment_def *def,
                                  int64_t through_ms, struct analyze_agg **out,
                                  struct ab_errinfo *ei);

/* --- clickhouse.c: the same aggregation as ClickHouse SQL --- */

struct ab_ch;

/*
 * analyze_sql_aggregate's aggregation of the events table of the ClickHouse database ch names
 * (migrations/clickhouse/), with metric events deduplicated on their id: the same *out, to
 * floating-point rounding. Errors: AB_ERR_UNAVAILABLE (ClickHouse unreachable), AB_ERR_STORAGE
 * (a query failed), AB_ERR_INVALID_JSON (an answer that is not JSONEachRow).
 */
enum ab_err analyze_ch_aggregate(struct ab_ch *const *shards, size_t nshards, const char *table,
                                 const struct analyze_experiment_def *def, int64_t through_ms,
                                 struct analyze_agg **out, struct ab_errinfo *ei);

/*
 * Stores results (JSON text) for (experiment, phase), replacing an earlier computation, adds them
 * to the history (computations before keep_since_ms are pruned) and records the attempt as a
 * success, in one transaction.
 */
enum ab_err analyze_sql_store(struct ab_db *control, const char *key, int64_t phase,
                              int64_t computed_at_ms, const char *results_json,
                              int64_t keep_since_ms, struct ab_errinfo *ei);

/* Records a failed attempt (its error code and message); the stored results stay. */
enum ab_err analyze_sql_store_failure(struct ab_db *control, const char *key,
                                      int64_t attempted_at_ms, const char *code,
                                      const char *message, struct ab_errinfo *ei);

/* What is known of an experiment's results and their last refresh (times in ms, 0 = none). */
struct analyze_refresh_state {
    int running;
    int64_t phase, phase_started_at;
    int64_t computed_at;      /* the stored results of the current phase */
    int64_t attempted_at;     /* the last attempt */
    char error_code[32];      /* "" when the last attempt succeeded */
    char error_message[512];
};

/* The state of experiment key; AB_ERR_NOT_FOUND when there is no such experiment. */
enum ab_err analyze_sql_refresh_state(struct ab_db *control, const char *key,
                                      struct analyze_refresh_state *out, struct ab_errinfo *ei);

/* The kept computations of key, newest first: [{phase, computed_at, computed_at_ms}]. */
enum ab_err analyze_sql_history(struct ab_db *control, const char *key, int64_t limit,
                                json_t **out, struct ab_errinfo *ei);

/*
 * The stored results of experiment key's current phase (as_of_ms 0), or the newest kept
 * computation at or before as_of_ms (*json the caller's); AB_ERR_NOT_FOUND (field experiment, or
 * as_of) when there is none.
 */
enum ab_err analyze_sql_load_results(struct ab_db *control, const char *key, int64_t as_of_ms,
                                     char **json, struct ab_errinfo *ei);

/* The oldest current result of a running experiment (its phase's start when it has none), ms. */
enum ab_err analyze_sql_oldest_result(struct ab_db *control, int64_t *oldest_ms,
                                      struct ab_errinfo *ei);

/*
 * analyze_experiment_in with the history's retention: computations before keep_since_ms are
 * pruned (analyze.c).
 */
struct analyze_events;
struct analyze_settings;
enum ab_err analyze_compute_store(struct ab_db *control, const struct analyze_events *events,
                                  const char *key, int64_t now_ms,
                                  const struct analyze_settings *settings, int64_t keep_since_ms,
                                  json_t **results, struct ab_errinfo *ei);

/* ms since the epoch as an RFC 3339 JSON string ("2026-12-07T10:00:00Z"). */
json_t *analyze_rfc3339(int64_t ms);

/* --- results.c: pure --- */

struct analyze_options {
    double alpha;
    enum analyze_correction correction;
    int64_t computed_at_ms;
};

/* One day of a comparison's series: the relative lift and its confidence sequence. */
struct analyze_point {
    int ok;          /* 0: the lift is not computable that day (no point in the series) */
    double n;        /* units in the two arms */
    double estimate, lo, hi;
    double p_min;    /* always-valid p-value, running minimum up to this day */
};

/* A treatment against the baseline for one metric: as of the last day, and day by day. */
struct analyze_comparison {
    size_t metric, variant;
    struct analyze_estimate abs, rel; /* the last day, fixed-horizon and sequential */
    double p_abs_min, p_rel_min;      /* always-valid p-values: running minimum over the days */
    double p_adjusted;                /* goal metrics: after the correction; others: p_rel_min */
    struct analyze_point *series;     /* [ndays] */
};

/* The statistics of one experiment, before they become JSON. */
struct analyze_computed {
    struct analyze_comparison *comps; /* [nmetrics * (nvariants - 1)], metric-major */
    size_t ncomps;
    int srm_ok;                       /* the SRM test was computable */
    int srm_mismatch;                 /* p < 0.001 */
    double srm_chi2, srm_p;
};

/* Every statistic of def's results from agg into *out (analyze_computed_dispose). */
void analyze_compute(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                     const struct analyze_options *opt, struct analyze_computed *out);
void analyze_computed_dispose(struct analyze_computed *c);

/* The results JSON (results.schema.json) of def from agg (a new reference). */
json_t *analyze_results(const struct analyze_experiment_def *def, const struct analyze_agg *agg,
                        const struct analyze_options *opt);

#endif
