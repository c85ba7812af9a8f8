/*
 * Wires the analysis together (analyze.h): definition from SQL (sql.c), aggregation from the
 * events store (sql.c for SQLite, clickhouse.c for ClickHouse), results from the statistics
 * (results.c), stored back through sql.c.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "abacus/clickhouse.h"
#include "analyze.h"
#include "analyze_int.h"

static enum ab_err options_of(const struct analyze_settings *s, int64_t now_ms,
                              struct analyze_options *o, struct ab_errinfo *ei)
{
    o->alpha = s != NULL && s->alpha != 0 ? s->alpha : ANALYZE_DEFAULT_ALPHA;
    o->computed_at_ms = now_ms;
    const char *c = s != NULL && s->correction != NULL ? s->correction : "holm";
    if (strcmp(c, "holm") == 0)
        o->correction = ANALYZE_CORRECTION_HOLM;
    else if (strcmp(c, "bh") == 0)
        o->correction = ANALYZE_CORRECTION_BH;
    else if (strcmp(c, "none") == 0)
        o->correction = ANALYZE_CORRECTION_NONE;
    else
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "correction", "must be holm, bh or none");
    if (!(o->alpha > 0 && o->alpha < 0.5))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "alpha", "must be in (0, 0.5)");
    return AB_OK;
}

/* The results of key as of now_ms from either events store, and their phase in *phase. */
static enum ab_err results_as_of(struct ab_db *control, const struct analyze_events *events,
                                 const char *key, int64_t now_ms,
                                 const struct analyze_settings *settings, json_t **results,
                                 int64_t *phase, struct ab_errinfo *ei)
{
    *results = NULL;
    struct analyze_options opt;
    struct analyze_experiment_def *def = NULL;
    struct analyze_agg *agg = NULL;
    enum ab_err rc = options_of(settings, now_ms, &opt, ei);
    if (rc != AB_OK || (rc = analyze_sql_load_def(control, key, &def, ei)) != AB_OK ||
        (rc = events->nshards == 0
                  ? analyze_sql_aggregate(events->sqlite, def, now_ms, &agg, ei)
                  : analyze_ch_aggregate(events->shards, events->nshards,
                                         events->nshards > 1 ? "events_local" : "events", def,
                                         now_ms, &agg, ei)) != AB_OK)
        goto Exit;
    *results = analyze_results(def, agg, &opt);
    *phase = def->phase;
Exit:
    analyze_agg_free(agg);
    analyze_experiment_def_free(def);
    return rc;
}

enum ab_err analyze_compute_store(struct ab_db *control, const struct analyze_events *events,
                                  const char *key, int64_t now_ms,
                                  const struct analyze_settings *settings, int64_t keep_since_ms,
                                  json_t **results, struct ab_errinfo *ei)
{
    int64_t phase = 0;
    json_t *r = NULL;
    *results = NULL;
    enum ab_err rc = results_as_of(control, events, key, now_ms, settings, &r, &phase, ei);
    if (rc != AB_OK)
        return rc;
    char *text = json_dumps(r, JSON_COMPACT);
    rc = analyze_sql_store(control, key, phase, now_ms, text, keep_since_ms, ei);
    free(text);
    if (rc == AB_OK)
        *results = r;
    else
        json_decref(r);
    return rc;
}

enum ab_err analyze_experiment_in(struct ab_db *control, const struct analyze_events *events,
                                  const char *key, int64_t now_ms,
                                  const struct analyze_settings *settings, json_t **results,
                                  struct ab_errinfo *ei)
{
    return analyze_compute_store(control, events, key, now_ms, settings,
                                 now_ms - ANALYZE_HISTORY_DEFAULT_DAYS * ANALYZE_DAY_MS, results,
                                 ei);
}

enum ab_err analyze_experiment(struct ab_db *control, struct ab_db *events, const char *key,
                               int64_t now_ms, const struct analyze_settings *settings,
                               json_t **results, struct ab_errinfo *ei)
{
    struct analyze_events ev = {.sqlite = events};
    return analyze_experiment_in(control, &ev, key, now_ms, settings, results, ei);
}

enum ab_err analyze_experiment_as_of(struct ab_db *control, const struct analyze_events *events,
                                     const char *key, int64_t now_ms,
                                     const struct analyze_settings *settings, json_t **results,
                                     struct ab_errinfo *ei)
{
    int64_t phase;
    return results_as_of(control, events, key, now_ms, settings, results, &phase, ei);
}

enum ab_err analyze_running(struct ab_db *control, char ***keys, size_t *n, struct ab_errinfo *ei)
{
    return analyze_sql_running(control, keys, n, ei);
}

enum ab_err analyze_stored(struct ab_db *control, const char *key, int64_t as_of_ms,
                           json_t **results, struct ab_errinfo *ei)
{
    char *text;
    *results = NULL;
    enum ab_err rc = analyze_sql_load_results(control, key, as_of_ms, &text, ei);
    if (rc != AB_OK)
        return rc;
    json_error_t jerr;
    *results = json_loads(text, 0, &jerr);
    free(text);
    if (*results == NULL)
        return ab_fail(ei, AB_ERR_STORAGE, "results", "stored results are not JSON: %s",
                       jerr.text);
    return AB_OK;
}

enum ab_err analyze_events_open(const struct analyze_store *store, struct analyze_events *ev,
                                struct ab_errinfo *ei)
{
    memset(ev, 0, sizeof(*ev));
    if (store->clickhouse != NULL) {
        size_t n = store->nclickhouse > 0 ? store->nclickhouse : 1;
        for (size_t i = 0; i < n && i < ANALYZE_SHARDS_MAX; i++) {
            enum ab_err rc = ab_ch_new(&store->clickhouse[i],
                                       store->timeout_ms > 0 ? store->timeout_ms : 600000,
                                       &ev->shards[i], ei);
            if (rc != AB_OK) {
                analyze_events_close(ev);
                return rc;
            }
            ab_ch_set_max_memory(ev->shards[i], ANALYZE_CH_MAX_MEMORY);
            ev->nshards = i + 1;
        }
        return AB_OK;
    }
    if (access(store->events_db, F_OK) != 0)
        return ab_fail(ei, AB_ERR_UNAVAILABLE, NULL,
                       "no events database at %s (events are collected by abacus up or abacus "
                       "collect)",
                       store->events_db);
    struct ab_db_options ro = {.readonly = 1};
    return ab_db_open(store->events_db, &ro, &ev->sqlite, ei);
}

void analyze_events_close(struct analyze_events *ev)
{
    ab_db_close(ev->sqlite);
    for (size_t i = 0; i < ev->nshards; i++)
        ab_ch_free(ev->shards[i]);
    memset(ev, 0, sizeof(*ev));
}
