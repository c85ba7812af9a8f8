/*
 * bench/analyze gen: writes the benchmark's data into DIR: DIR/abacus.db (the control schema with
 * one running experiment "bench", 2 variants and 3 metrics: binomial "purchase", mean "revenue"
 * with a 72 h window, ratio "revenue" per "session") and DIR/events.db (the collector's schema)
 * with UNITS units each exposed once and EVENTS events in total, over 14 days, seeded.
 * Usage: gen DIR [EVENTS [UNITS]] (defaults 10,000,000 and 1,000,000). Then also the statistics
 * micro-benchmark: gen --stats runs analyze_results on 1,000 experiments x 10 metrics x 90 days
 * of synthetic sums and prints the time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "analyze_int.h"
#include "collect.h"

#define START 1767225600000LL /* 2026-01-01T00:00:00Z */
#define DAY 86400000LL

static uint64_t g_rng = 12345;
static uint64_t next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int must(enum ab_err rc, const struct ab_errinfo *ei)
{
    if (rc != AB_OK) {
        fprintf(stderr, "gen: %s\n", ei->message);
        exit(1);
    }
    return 0;
}

static int stats_bench(void)
{
    enum { EXPS = 1000, METRICS = 10, DAYS = 90 };
    struct analyze_experiment_def def;
    memset(&def, 0, sizeof(def));
    char k[] = "bench", c[] = "control", t[] = "treatment";
    def.key = k;
    def.phase = 1;
    def.phase_start_ms = START;
    def.nvariants = 2;
    def.variants[0] = c;
    def.variants[1] = t;
    def.weights[0] = def.weights[1] = 0.5;
    def.nstar = 5000;
    def.nmetrics = METRICS;
    def.metrics = calloc(METRICS, sizeof(*def.metrics));
    char names[METRICS][16];
    for (int m = 0; m < METRICS; m++) {
        snprintf(names[m], sizeof(names[m]), "metric-%d", m);
        def.metrics[m] = (struct analyze_metric_def){names[m], (enum analyze_metric_type)(m % 3),
                                                     m < 3 ? ANALYZE_GOAL : ANALYZE_SECONDARY,
                                                     names[m], m % 3 == 2 ? names[m] : NULL, 0, 0};
    }
    struct analyze_agg agg = {2, METRICS, DAYS, NULL, {0}, 0, 0, 0, NULL};
    agg.cells = calloc((size_t)METRICS * 2 * DAYS, sizeof(*agg.cells));
    int cov[METRICS];
    for (int m = 0; m < METRICS; m++)
        cov[m] = m % 3 != 2;
    agg.has_covariate = cov;
    for (int m = 0; m < METRICS; m++)
        for (int v = 0; v < 2; v++)
            for (int d = 0; d < DAYS; d++) {
                double n = 1000.0 * (d + 1);
                double mean = m % 3 == 0 ? 0.1 + 0.01 * v : 5 + 0.2 * v;
                struct analyze_sums *s = &analyze_agg_cell(&agg, (size_t)m, (size_t)v, (size_t)d)->sums;
                *s = (struct analyze_sums){n, mean * n, (mean * mean + 1) * n, 4 * n, 17 * n,
                                           (4 * mean + 0.5) * n};
            }
    agg.units[0] = agg.units[1] = 90000;
    struct analyze_options opt = {0.05, ANALYZE_CORRECTION_HOLM, START + DAYS * DAY};
    double t0 = now_s();
    size_t decided = 0;
    for (int e = 0; e < EXPS; e++) {
        struct analyze_computed cp;
        analyze_compute(&def, &agg, &opt, &cp);
        for (size_t i = 0; i < cp.ncomps; i++)
            decided += cp.comps[i].p_adjusted < 0.05;
        analyze_computed_dispose(&cp);
    }
    double dt = now_s() - t0;
    printf("statistics: %d experiments x %d metrics x %d days of series: %.3f s "
           "(target <= 1 s; %zu significant comparisons)\n",
           EXPS, METRICS, DAYS, dt, decided);
    t0 = now_s();
    for (int e = 0; e < 100; e++)
        json_decref(analyze_results(&def, &agg, &opt));
    printf("and as results JSON (statistics + JSON building): %.3f s per 1,000 experiments\n",
           (now_s() - t0) * 10);
    free(agg.cells);
    free(def.metrics);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--stats") == 0)
        return stats_bench();
    if (argc < 2) {
        fprintf(stderr, "usage: gen DIR [EVENTS [UNITS]] | gen --stats\n");
        return 2;
    }
    long long events = argc > 2 ? atoll(argv[2]) : 10000000LL; // NOLINT(cert-err34-c): bench CLI
    long long units = argc > 3 ? atoll(argv[3]) : 1000000LL;   // NOLINT(cert-err34-c)
    char path[4096];
    struct ab_errinfo ei;
    struct ab_db *control, *ev;
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    snprintf(path, sizeof(path), "%s/abacus.db", argv[1]);
    must(ab_db_open(path, &o, &control, &ei), &ei);
    must(ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei), &ei);
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO experiments (id, key, seed, status, phase, created_at, updated_at)"
             " VALUES (1, 'bench', 'bench', 'running', 1, 0, 0);"
             "INSERT INTO experiment_phases VALUES (1, 1, 'bench', '[0.5,0.5]', %lld, NULL);"
             "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
             " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5);"
             "INSERT INTO metrics (id, key, type, event, denominator_event, direction,"
             " conversion_window_hours, created_at, updated_at) VALUES"
             " (1, 'purchase', 'binomial', 'purchase', NULL, 'increase', NULL, 0, 0),"
             " (2, 'revenue', 'mean', 'revenue', NULL, 'increase', 72, 0, 0),"
             " (3, 'revenue_per_session', 'ratio', 'revenue', 'session', 'increase', NULL, 0, 0);"
             "INSERT INTO experiment_metrics VALUES (1, 1, 'goal'), (1, 2, 'goal'),"
             " (1, 3, 'secondary');",
             (long long)START);
    must(ab_db_exec(control, sql, &ei), &ei);
    ab_db_close(control);

    snprintf(path, sizeof(path), "%s/events.db", argv[1]);
    must(ab_db_open(path, &o, &ev, &ei), &ei);
    must(ab_migrate(ev, collect_migrations, collect_migrations_count, NULL, NULL, &ei), &ei);
    sqlite3 *h = ab_db_handle(ev);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
                           "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts,"
                           " received_at, unit, experiment, variant, metric, value, source)"
                           " VALUES (?1, ?2, 0, ?3, ?4, ?4, ?4, ?5, ?6, ?7, ?8, ?9, 'events')",
                           -1, &st, NULL) != SQLITE_OK)
        return 1;
    double t0 = now_s();
    must(ab_db_exec(ev, "BEGIN", &ei), &ei);
    static const char *const METRIC[] = {"purchase", "revenue", "session"};
    long long written = 0;
    /* events in time order, as a collector stores them: the exposure of unit u at its time, and
     * its metric events spread after (and some before) it */
    for (long long i = 0; i < events; i++) {
        long long u = i < units ? i : (long long)(next() % (uint64_t)units);
        int exposure = i < units;
        int64_t ts = START + (int64_t)((double)i / (double)events * 14 * DAY);
        char id[32], unit[32];
        snprintf(id, sizeof(id), "e%lld", i);
        snprintf(unit, sizeof(unit), "u%lld", u);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (int64_t)next());
        sqlite3_bind_text(st, 3, exposure ? "exposure" : "metric", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, ts);
        sqlite3_bind_text(st, 5, unit, -1, SQLITE_TRANSIENT);
        if (exposure) {
            sqlite3_bind_text(st, 6, "bench", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, u % 2 ? "treatment" : "control", -1, SQLITE_STATIC);
            sqlite3_bind_null(st, 8);
            sqlite3_bind_null(st, 9);
        } else {
            sqlite3_bind_null(st, 6);
            sqlite3_bind_null(st, 7);
            sqlite3_bind_text(st, 8, METRIC[next() % 3], -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 9, (double)(next() % 10000) / 100.0);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "gen: %s\n", sqlite3_errmsg(h));
            return 1;
        }
        sqlite3_reset(st);
        if (++written % 500000 == 0) {
            must(ab_db_exec(ev, "COMMIT; BEGIN", &ei), &ei);
        }
    }
    must(ab_db_exec(ev, "COMMIT", &ei), &ei);
    sqlite3_finalize(st);
    ab_db_close(ev);
    printf("generated %lld events (%lld units) in %.1f s\n", written, units, now_s() - t0);
    return 0;
}
