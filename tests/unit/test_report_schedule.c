/*
 * The report's scheduler (analyze/report_schedule.c) with an injected clock and the real report
 * writer over seeded databases: the due day at and around --report-at, the run at the configured
 * time and not a millisecond before, a catch-up after downtime that writes the missed report once
 * (also across a restart), and a failed run retried after its backoff rather than at every step.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/log.h"
#include "abacus/migrate.h"
#include "analyze.h"
#include "harness.h"

extern const struct ab_migration collect_migrations[];
extern const size_t collect_migrations_count;

#define DAY 86400000LL
#define MIN 60000LL
#define JAN1 1767225600000LL /* 2026-01-01T00:00:00Z */
#define AT (2 * 60)          /* 02:00 */

struct world {
    char dir[256], reports[320];
    struct ab_db *control, *events;
    int runs;
    int64_t last_day;
    struct ab_log log;
    int devnull; /* where the failure test's error lines go */
};

static struct world g_w;

static void exec_ok(struct ab_db *db, const char *sql)
{
    struct ab_errinfo ei;
    if (ab_db_exec(db, sql, &ei) != AB_OK)
        fail_msg("%s: %s", sql, ei.message);
}

/* The scheduler's run: the real report of day into out_dir, counted. */
static enum ab_err run(void *data, int64_t day_ms, const char *out_dir, struct ab_errinfo *ei)
{
    struct world *w = data;
    w->runs++;
    w->last_day = day_ms;
    struct analyze_report_sources src = {.control = w->control, .events = {.sqlite = w->events}};
    return analyze_report_write(&src, day_ms, out_dir, NULL, ei);
}

static int setup(void **state)
{
    (void)state;
    struct world *w = &g_w;
    memset(w, 0, sizeof(*w));
    if (make_temp_dir(w->dir) != 0)
        return -1;
    if (snprintf(w->reports, sizeof(w->reports), "%s/reports", w->dir) >= (int)sizeof(w->reports))
        return -1;
    w->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ab_log_init(&w->log, AB_LOG_ERROR, w->devnull >= 0 ? w->devnull : 2, &ab_clock_system);
    struct ab_errinfo ei;
    struct ab_db_options o = {0};
    char path[400];
    if (snprintf(path, sizeof(path), "%s/abacus.db", w->dir) >= (int)sizeof(path))
        return -1;
    if (ab_db_open(path, &o, &w->control, &ei) != AB_OK ||
        ab_migrate(w->control, ab_migrations, ab_migrations_count, NULL, NULL, &ei) != AB_OK)
        return -1;
    if (snprintf(path, sizeof(path), "%s/events.db", w->dir) >= (int)sizeof(path))
        return -1;
    if (ab_db_open(path, &o, &w->events, &ei) != AB_OK ||
        ab_migrate(w->events, collect_migrations, collect_migrations_count, NULL, NULL, &ei) !=
            AB_OK)
        return -1;
    exec_ok(w->control,
            "INSERT INTO experiments (id, key, name, seed, status, phase, created_at, updated_at)"
            " VALUES (1, 'exp', 'Exp', 'exp', 'running', 1, 0, 0);"
            "INSERT INTO experiment_phases VALUES (1, 1, 'exp', '[0.5,0.5]', 1767225600000, NULL);"
            "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
            " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5);"
            "INSERT INTO metrics (id, key, type, event, direction, created_at, updated_at)"
            " VALUES (1, 'purchase', 'binomial', 'purchase', 'increase', 0, 0);"
            "INSERT INTO experiment_metrics VALUES (1, 1, 'goal');");
    exec_ok(w->events,
            "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, received_at, unit,"
            " experiment, variant, source) VALUES"
            " ('a', 1, 0, 'exposure', 1767229200000, 1767229200000, 1767229200000, 'u1', 'exp',"
            "  'control', 'events'),"
            " ('b', 2, 0, 'exposure', 1767229200000, 1767229200000, 1767229200000, 'u2', 'exp',"
            "  'treatment', 'events')");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ab_db_close(g_w.control);
    ab_db_close(g_w.events);
    remove_tree(g_w.dir);
    if (g_w.devnull >= 0)
        close(g_w.devnull);
    return 0;
}

static int report_exists(const char *reports, const char *date)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/report.json", reports, date);
    return access(path, F_OK) == 0;
}

static struct analyze_scheduler *scheduler(struct ab_clock_fixed *clock, const char *reports)
{
    struct analyze_schedule_config cfg = {.reports_dir = reports,
                                          .at_minute = AT,
                                          .clock = &clock->clock,
                                          .log = &g_w.log,
                                          .run = run,
                                          .run_data = &g_w};
    struct analyze_scheduler *s = NULL;
    struct ab_errinfo ei;
    assert_int_equal(analyze_scheduler_new(&cfg, &s, &ei), AB_OK);
    return s;
}

static void tick(struct analyze_scheduler *s, int want_ran, int64_t *next)
{
    struct ab_errinfo ei;
    int ran = -1;
    int64_t n = 0;
    enum ab_err rc = analyze_scheduler_tick(s, &ran, &n, &ei);
    if (rc != AB_OK)
        fail_msg("tick: %s", ei.message);
    assert_int_equal(ran, want_ran);
    if (next != NULL)
        *next = n;
}

static void test_due_day(void **state)
{
    (void)state;
    /* on Jan 5 before 02:00 the newest due report is Jan 3's; from 02:00 on, Jan 4's */
    assert_int_equal(analyze_schedule_due_day(AT, JAN1 + 4 * DAY + 2 * 60 * MIN - 1),
                     JAN1 + 2 * DAY);
    assert_int_equal(analyze_schedule_due_day(AT, JAN1 + 4 * DAY + 2 * 60 * MIN), JAN1 + 3 * DAY);
    assert_int_equal(analyze_schedule_due_day(AT, JAN1 + 5 * DAY - 1), JAN1 + 3 * DAY);
    assert_int_equal(analyze_schedule_due_day(0, JAN1 + DAY), JAN1);
    assert_int_equal(analyze_schedule_due_day(23 * 60 + 59, JAN1 + 2 * DAY - MIN - 1), JAN1 - DAY);
    assert_int_equal(analyze_schedule_due_day(23 * 60 + 59, JAN1 + 2 * DAY - MIN), JAN1);
    char date[11];
    int64_t d = 0;
    struct ab_errinfo ei;
    assert_int_equal(analyze_report_parse_date("2026-01-04", &d, &ei), AB_OK);
    assert_int_equal(d, JAN1 + 3 * DAY);
    analyze_report_format_date(d, date);
    assert_string_equal(date, "2026-01-04");
    assert_int_equal(analyze_report_parse_date("2026-02-30", &d, &ei), AB_ERR_INVALID_FIELD);
    assert_int_equal(analyze_report_parse_date("2026-1-4", &d, &ei), AB_ERR_INVALID_FIELD);
}

/* It fires at 02:00 for the previous day, not a millisecond before, and once. */
static void test_fires_at_configured_time(void **state)
{
    (void)state;
    char reports[400];
    snprintf(reports, sizeof(reports), "%s/a", g_w.reports);
    struct ab_clock_fixed clock;
    ab_clock_fixed_init(&clock, JAN1 + 4 * DAY + 60 * MIN); /* Jan 5, 01:00 */
    mkdir(g_w.reports, 0755);
    mkdir(reports, 0755);
    char dir[450];
    snprintf(dir, sizeof(dir), "%s/2026-01-03", reports); /* Jan 3's was written before */
    mkdir(dir, 0755);
    snprintf(dir, sizeof(dir), "%s/2026-01-03/report.json", reports);
    FILE *f = fopen(dir, "w");
    assert_non_null(f);
    fclose(f);
    struct analyze_scheduler *s = scheduler(&clock, reports);
    g_w.runs = 0;
    int64_t next = 0;
    tick(s, 0, &next);
    assert_int_equal(next, JAN1 + 4 * DAY + 2 * 60 * MIN); /* Jan 5, 02:00 */
    ab_clock_fixed_advance_ms(&clock, 60 * MIN - 1);       /* 01:59:59.999 */
    tick(s, 0, NULL);
    assert_false(report_exists(reports, "2026-01-04"));
    ab_clock_fixed_advance_ms(&clock, 1); /* 02:00:00.000 */
    tick(s, 1, &next);
    assert_int_equal(g_w.runs, 1);
    assert_int_equal(g_w.last_day, JAN1 + 3 * DAY);
    assert_true(report_exists(reports, "2026-01-04"));
    assert_int_equal(next, JAN1 + 5 * DAY + 2 * 60 * MIN); /* Jan 6, 02:00 */
    ab_clock_fixed_advance_ms(&clock, 3 * 60 * MIN);
    tick(s, 0, NULL);
    assert_int_equal(g_w.runs, 1);
    /* the report it wrote is the day's */
    char path[500];
    snprintf(path, sizeof(path), "%s/2026-01-04/report.json", reports);
    json_t *r = json_load_file(path, 0, NULL);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "date")), "2026-01-04");
    assert_int_equal(json_array_size(json_object_get(r, "experiments")), 1);
    json_decref(r);
    analyze_scheduler_free(s);
}

/* Down from Jan 5 03:00 to Jan 8 05:00: the start writes Jan 7's report, once, even restarted. */
static void test_catch_up_once(void **state)
{
    (void)state;
    char reports[400];
    snprintf(reports, sizeof(reports), "%s/b", g_w.reports);
    struct ab_clock_fixed clock;
    ab_clock_fixed_init(&clock, JAN1 + 4 * DAY + 3 * 60 * MIN);
    struct analyze_scheduler *s = scheduler(&clock, reports);
    g_w.runs = 0;
    tick(s, 1, NULL); /* Jan 4's, due at 02:00, before this start */
    assert_true(report_exists(reports, "2026-01-04"));
    analyze_scheduler_free(s); /* the process stops */

    ab_clock_fixed_advance_ms(&clock, 3 * DAY + 2 * 60 * MIN); /* Jan 8, 05:00 */
    s = scheduler(&clock, reports);
    tick(s, 1, NULL);
    assert_int_equal(g_w.runs, 2);
    assert_int_equal(g_w.last_day, JAN1 + 6 * DAY);
    assert_true(report_exists(reports, "2026-01-07"));
    tick(s, 0, NULL);
    analyze_scheduler_free(s);
    s = scheduler(&clock, reports); /* restarted again: nothing to catch up */
    tick(s, 0, NULL);
    assert_int_equal(g_w.runs, 2);
    /* only the newest missed day is caught up; older ones are abacus report --date's */
    assert_false(report_exists(reports, "2026-01-05"));
    assert_false(report_exists(reports, "2026-01-06"));
    analyze_scheduler_free(s);
}

/* A run that fails (the reports directory cannot be made) waits for its backoff. */
static void test_failure_backoff(void **state)
{
    (void)state;
    char blocker[400], reports[450];
    snprintf(blocker, sizeof(blocker), "%s/file", g_w.dir);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(reports, sizeof(reports), "%s/reports", blocker); /* under a regular file */
    struct ab_clock_fixed clock;
    ab_clock_fixed_init(&clock, JAN1 + 4 * DAY + 3 * 60 * MIN);
    struct analyze_scheduler *s = scheduler(&clock, reports);
    g_w.runs = 0;
    struct ab_errinfo ei;
    int ran = -1;
    int64_t next = 0;
    assert_int_equal(analyze_scheduler_tick(s, &ran, &next, &ei), AB_ERR_IO);
    assert_int_equal(g_w.runs, 1);
    assert_int_equal(next, JAN1 + 4 * DAY + 3 * 60 * MIN + MIN);
    ab_clock_fixed_advance_ms(&clock, MIN - 1);
    assert_int_equal(analyze_scheduler_tick(s, &ran, &next, &ei), AB_OK);
    assert_int_equal(ran, 0);
    assert_int_equal(g_w.runs, 1);
    ab_clock_fixed_advance_ms(&clock, 1);
    assert_int_equal(analyze_scheduler_tick(s, &ran, &next, &ei), AB_ERR_IO);
    assert_int_equal(g_w.runs, 2);
    assert_int_equal(next, JAN1 + 4 * DAY + 3 * 60 * MIN + MIN + 2 * MIN); /* doubled */
    analyze_scheduler_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_due_day),
        cmocka_unit_test(test_fires_at_configured_time),
        cmocka_unit_test(test_catch_up_once),
        cmocka_unit_test(test_failure_backoff),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
