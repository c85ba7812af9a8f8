/*
 * The analysis' aggregation (the scans of analyze/sql.c through the per-unit join of
 * analyze/units.c) against a brute-force computation in C over the same seeded events, written
 * in an order that is not time order and with some unit ids longer than the join's inline copy
 * (256 bytes): first exposures, exclusion of units with two variants, exposures before the phase and
 * after the as-of time left out, conversion windows, the pre-exposure covariate, ratio cross
 * sums, and the cumulative day series. Then the results built from them: every comparison has a
 * decision, nothing is NaN, and storing twice keeps one row per experiment and phase.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "analyze.h"
#include "analyze_int.h"
#include "harness.h"

extern const struct ab_migration collect_migrations[];
extern const size_t collect_migrations_count;

#define UNITS 1500 /* past the first growths of the join's hash table */
#define DAY ANALYZE_DAY_MS
#define START 1767225600000LL /* 2026-01-01T00:00:00Z, the phase start */
#define NDAYS 6
#define THROUGH (START + 5 * DAY + DAY / 2) /* as-of time: mid day 5 */
#define MAX_EVENTS 20000

struct event {
    int exposure;
    int64_t ts;
    int unit;
    int variant;        /* exposures */
    const char *metric; /* metric events */
    double value;
};

static struct event g_ev[MAX_EVENTS];
static size_t g_nev;
static char g_dir[512];

static uint64_t g_rng = 42;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo));
}

static const char *const METRICS[] = {"purchase", "revenue", "session"};

/* Seeded traffic: exposures (some repeated, some to both variants, some outside the window) and
 * metric events before and after them. */
static void generate(void)
{
    g_nev = 0;
    for (int u = 0; u < UNITS; u++) {
        int variant = (int)(rnd() % 2);
        int64_t t0 = rnd_range(START - DAY, START + 6 * DAY);
        int nexp = 1 + (int)(rnd() % 3);
        for (int k = 0; k < nexp; k++) {
            int v = (u % 25 == 0 && k == 1) ? 1 - variant : variant; /* 4% see both */
            g_ev[g_nev++] = (struct event){1, t0 + k * (int64_t)(rnd() % (3 * DAY)), u, v, NULL, 0};
        }
        int nmet = (int)(rnd() % 8);
        for (int k = 0; k < nmet; k++) {
            const char *m = METRICS[rnd() % 3];
            double value = m == METRICS[0] ? 1 : (double)(rnd() % 10000) / 100.0;
            g_ev[g_nev++] = (struct event){0, rnd_range(t0 - 10 * DAY, t0 + 5 * DAY), u, 0, m,
                                           value};
        }
    }
}

static void exec_ok(struct ab_db *db, const char *sql)
{
    struct ab_errinfo ei;
    if (ab_db_exec(db, sql, &ei) != AB_OK)
        fail_msg("%s: %s", sql, ei.message);
}

static void write_events(struct ab_db *db)
{
    sqlite3 *h = ab_db_handle(db);
    sqlite3_stmt *st;
    exec_ok(db, "BEGIN");
    assert_int_equal(
        sqlite3_prepare_v2(h,
                           "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts,"
                           " received_at, unit, experiment, variant, metric, value, source)"
                           " VALUES (?1, ?2, 0, ?3, ?4, ?4, ?4, ?5, ?6, ?7, ?8, ?9, 'events')",
                           -1, &st, NULL),
        SQLITE_OK);
    for (size_t i = 0; i < g_nev; i++) {
        const struct event *e = &g_ev[i];
        char id[32], unit[400];
        snprintf(id, sizeof(id), "ev-%zu", i);
        if (e->unit % 100 == 7)
            snprintf(unit, sizeof(unit), "unit-%d-%0300d", e->unit, 0);
        else
            snprintf(unit, sizeof(unit), "unit-%d", e->unit);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (int64_t)i * 7919);
        sqlite3_bind_text(st, 3, e->exposure ? "exposure" : "metric", -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, e->ts);
        sqlite3_bind_text(st, 5, unit, -1, SQLITE_TRANSIENT);
        if (e->exposure) {
            sqlite3_bind_text(st, 6, "exp", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, e->variant ? "treatment" : "control", -1, SQLITE_STATIC);
            sqlite3_bind_null(st, 8);
            sqlite3_bind_null(st, 9);
        } else {
            sqlite3_bind_null(st, 6);
            sqlite3_bind_null(st, 7);
            sqlite3_bind_text(st, 8, e->metric, -1, SQLITE_STATIC);
            sqlite3_bind_double(st, 9, e->value);
        }
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    /* another experiment's exposures must not count */
    exec_ok(db, "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, received_at,"
                " unit, experiment, variant, source) VALUES ('other', 1, 0, 'exposure',"
                " 1767225600001, 1767225600001, 1767225600001, 'unit-1', 'other', 'control',"
                " 'events')");
    exec_ok(db, "COMMIT");
}

static void write_control(struct ab_db *db)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO experiments (id, key, seed, status, phase, created_at, updated_at)"
             " VALUES (1, 'exp', 'exp', 'running', 1, 0, 0);"
             "INSERT INTO experiment_phases VALUES (1, 1, 'exp', '[0.5,0.5]', %lld, NULL);"
             "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
             " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5);"
             "INSERT INTO metrics (id, key, type, event, denominator_event, direction,"
             " conversion_window_hours, created_at, updated_at) VALUES"
             " (1, 'purchase', 'binomial', 'purchase', NULL, 'increase', NULL, 0, 0),"
             " (2, 'revenue', 'mean', 'revenue', NULL, 'increase', 48, 0, 0),"
             " (3, 'revenue_per_session', 'ratio', 'revenue', 'session', 'increase', NULL, 0, 0);"
             "INSERT INTO experiment_metrics VALUES (1, 1, 'goal'), (1, 2, 'goal'),"
             " (1, 3, 'secondary');",
             (long long)START);
    exec_ok(db, sql);
}

static int setup(void **state)
{
    (void)state;
    if (make_temp_dir(g_dir) != 0)
        return -1;
    generate();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(g_dir);
    return 0;
}

/* Brute force: per unit, first exposure and variant set, then per metric value by day. */
struct unit_state {
    int exposed, multi, variant;
    int64_t t0;
};

static void brute(const struct analyze_experiment_def *def, struct analyze_sums *want)
{
    struct unit_state us[UNITS];
    memset(us, 0, sizeof(us));
    for (size_t i = 0; i < g_nev; i++) {
        const struct event *e = &g_ev[i];
        if (!e->exposure || e->ts < START || e->ts >= THROUGH)
            continue;
        struct unit_state *u = &us[e->unit];
        if (!u->exposed) {
            *u = (struct unit_state){1, 0, e->variant, e->ts};
        } else {
            if (e->variant != u->variant)
                u->multi = 1;
            if (e->ts < u->t0)
                u->t0 = e->ts;
        }
    }
    for (size_t m = 0; m < def->nmetrics; m++) {
        const struct analyze_metric_def *md = &def->metrics[m];
        for (int u = 0; u < UNITS; u++) {
            if (!us[u].exposed || us[u].multi)
                continue;
            int64_t entry = (us[u].t0 - START) / DAY;
            double pre = 0, num[NDAYS] = {0}, den[NDAYS] = {0};
            int pre_any = 0;
            for (size_t i = 0; i < g_nev; i++) {
                const struct event *e = &g_ev[i];
                if (e->exposure || e->unit != u)
                    continue;
                int is_num = strcmp(e->metric, md->event) == 0;
                int is_den = md->denominator_event != NULL &&
                             strcmp(e->metric, md->denominator_event) == 0;
                if (is_num && e->ts < us[u].t0 && e->ts >= us[u].t0 - ANALYZE_CUPED_LOOKBACK_MS) {
                    pre += e->value;
                    pre_any = 1;
                }
                if (e->ts < us[u].t0 || e->ts >= THROUGH ||
                    (md->window_ms > 0 && e->ts >= us[u].t0 + md->window_ms))
                    continue;
                int64_t d = (e->ts - START) / DAY;
                if (is_num)
                    num[d] += md->type == ANALYZE_BINOMIAL ? 1 : e->value;
                if (is_den)
                    den[d] += e->value;
            }
            double x = md->type == ANALYZE_RATIO ? 0 : md->type == ANALYZE_BINOMIAL ? pre_any : pre;
            double cn = 0, cd = 0;
            for (int d = 0; d < NDAYS; d++) {
                cn += num[d];
                cd += den[d];
                if (d < entry)
                    continue;
                double y = md->type == ANALYZE_BINOMIAL ? (cn > 0) : cn;
                struct analyze_sums *w = &want[(m * 2 + (size_t)us[u].variant) * NDAYS + (size_t)d];
                w->n += 1;
                w->sum_y += y;
                w->sum_yy += y * y;
                if (md->type == ANALYZE_RATIO) {
                    w->sum_x += cd;
                    w->sum_xx += cd * cd;
                    w->sum_xy += y * cd;
                } else {
                    w->sum_x += x;
                    w->sum_xx += x * x;
                    w->sum_xy += x * y;
                }
            }
        }
    }
}

static void same(const char *what, size_t m, size_t v, size_t d, double got, double want)
{
    if (!(fabs(got - want) <= 1e-9 * fmax(1, fabs(want))))
        fail_msg("metric %zu variant %zu day %zu %s: aggregation %.10g, brute force %.10g", m, v, d, what,
                 got, want);
}

static void test_aggregate_matches_brute_force(void **state)
{
    (void)state;
    char cpath[600], epath[600];
    snprintf(cpath, sizeof(cpath), "%s/abacus.db", g_dir);
    snprintf(epath, sizeof(epath), "%s/events.db", g_dir);
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    struct ab_db *control, *events;
    struct ab_errinfo ei;
    assert_int_equal(ab_db_open(cpath, &o, &control, &ei), AB_OK);
    assert_int_equal(ab_db_open(epath, &o, &events, &ei), AB_OK);
    assert_int_equal(ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei),
                     AB_OK);
    assert_int_equal(
        ab_migrate(events, collect_migrations, collect_migrations_count, NULL, NULL, &ei), AB_OK);
    write_control(control);
    write_events(events);

    struct analyze_experiment_def *def;
    assert_int_equal(analyze_sql_load_def(control, "exp", &def, &ei), AB_OK);
    assert_int_equal(def->nvariants, 2);
    assert_int_equal(def->nmetrics, 3);
    assert_int_equal(def->metrics[1].window_ms, 48 * 3600000LL);
    struct analyze_agg *agg;
    assert_int_equal(analyze_sql_aggregate(events, def, THROUGH, &agg, &ei), AB_OK);
    assert_int_equal(agg->ndays, NDAYS);

    struct analyze_sums want[3 * 2 * NDAYS];
    memset(want, 0, sizeof(want));
    brute(def, want);
    int64_t multi = 0;
    for (size_t m = 0; m < 3; m++) {
        for (size_t v = 0; v < 2; v++) {
            for (size_t d = 0; d < NDAYS; d++) {
                const struct analyze_sums *g = &analyze_agg_cell(agg, m, v, d)->sums;
                const struct analyze_sums *w = &want[(m * 2 + v) * NDAYS + d];
                same("n", m, v, d, g->n, w->n);
                same("sum_y", m, v, d, g->sum_y, w->sum_y);
                same("sum_yy", m, v, d, g->sum_yy, w->sum_yy);
                same("sum_x", m, v, d, g->sum_x, w->sum_x);
                same("sum_xx", m, v, d, g->sum_xx, w->sum_xx);
                same("sum_xy", m, v, d, g->sum_xy, w->sum_xy);
            }
            assert_int_equal(agg->units[v], (int64_t)want[v * NDAYS + NDAYS - 1].n);
        }
    }
    for (int u = 0; u < UNITS; u++)
        multi += u % 25 == 0; /* candidates; the exact count is what the brute force saw */
    assert_true(agg->multiple_exposures > 0 && agg->multiple_exposures <= multi);
    assert_true(want[NDAYS - 1].sum_y > 0 && want[2 * NDAYS + NDAYS - 1].sum_x > 0);

    /* results: decisions everywhere, stored once however often it runs */
    json_t *r1, *r2;
    struct analyze_settings s = {0, NULL};
    assert_int_equal(analyze_experiment(control, events, "exp", THROUGH, &s, &r1, &ei), AB_OK);
    assert_int_equal(analyze_experiment(control, events, "exp", THROUGH, &s, &r2, &ei), AB_OK);
    assert_true(json_equal(r1, r2));
    json_decref(r2);
    json_t *stored;
    assert_int_equal(analyze_stored(control, "exp", 0, &stored, &ei), AB_OK);
    assert_true(json_equal(stored, r1));
    sqlite3_stmt *st;
    assert_int_equal(ab_db_prepare(control, "SELECT COUNT(*) FROM results", &st, &ei), AB_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_reset(st);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r1, "units"),
                                                        "multiple_exposures")),
                     agg->multiple_exposures);
    size_t i, j;
    json_t *m, *c;
    json_array_foreach(json_object_get(r1, "metrics"), i, m)
    {
        assert_int_equal(json_array_size(json_object_get(m, "comparisons")), 1);
        json_array_foreach(json_object_get(m, "comparisons"), j, c)
            assert_non_null(json_string_value(json_object_get(c, "decision")));
        assert_true(json_array_size(json_object_get(m, "series")) > 0);
    }
    assert_int_equal(analyze_experiment(control, events, "nope", THROUGH, &s, &r2, &ei),
                     AB_ERR_NOT_FOUND);
    json_decref(r1);
    json_decref(stored);
    analyze_agg_free(agg);
    analyze_experiment_def_free(def);
    ab_db_close(events);
    ab_db_close(control);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_aggregate_matches_brute_force)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
