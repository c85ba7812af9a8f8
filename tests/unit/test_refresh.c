/*
 * The results service's schedule (analyze/refresh.c) with an injected clock over real SQLite
 * files: each running experiment is refreshed at its slot of the interval and then once per
 * interval, the slots of different experiments are spread over the interval, only one experiment
 * is analysed per step, a failed refresh keeps the stored results (answered as stale, with the
 * error) and is retried with a doubling backoff capped at the interval, the history keeps every
 * computation, and /metrics counts it all.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

#define HOUR 3600000LL
#define JAN3 1767398400000LL /* 2026-01-03T00:00:00Z */

struct world {
    char dir[256], control_path[320], events_path[320], moved_path[330];
    struct ab_clock_fixed clock;
    struct ab_log log;
    struct analyze_refresh *r;
    int devnull;
};

static struct world g_w;

static void exec_ok(struct ab_db *db, const char *sql)
{
    struct ab_errinfo ei;
    if (ab_db_exec(db, sql, &ei) != AB_OK)
        fail_msg("%s: %s", sql, ei.message);
}

static int setup(void **state)
{
    (void)state;
    struct world *w = &g_w;
    memset(w, 0, sizeof(*w));
    if (make_temp_dir(w->dir) != 0)
        return -1;
    if (snprintf(w->control_path, sizeof(w->control_path), "%s/abacus.db", w->dir) >=
            (int)sizeof(w->control_path) ||
        snprintf(w->events_path, sizeof(w->events_path), "%s/events.db", w->dir) >=
            (int)sizeof(w->events_path) ||
        snprintf(w->moved_path, sizeof(w->moved_path), "%s/events.db.away", w->dir) >=
            (int)sizeof(w->moved_path))
        return -1;
    w->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ab_log_init(&w->log, AB_LOG_ERROR, w->devnull >= 0 ? w->devnull : 2, &ab_clock_system);
    struct ab_errinfo ei;
    struct ab_db_options o = {0};
    struct ab_db *control = NULL, *events = NULL;
    if (ab_db_open(w->control_path, &o, &control, &ei) != AB_OK ||
        ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei) != AB_OK ||
        ab_db_open(w->events_path, &o, &events, &ei) != AB_OK ||
        ab_migrate(events, collect_migrations, collect_migrations_count, NULL, NULL, &ei) != AB_OK)
        return -1;
    /* two running experiments started on 2026-01-01, each with two exposed units */
    exec_ok(
        control,
        "INSERT INTO metrics (id, key, type, event, direction, created_at, updated_at)"
        " VALUES (1, 'purchase', 'binomial', 'purchase', 'increase', 0, 0);"
        "INSERT INTO experiments (id, key, name, seed, status, phase, created_at, updated_at)"
        " VALUES (1, 'alpha', 'A', 'alpha', 'running', 1, 0, 0),"
        "        (2, 'beta', 'B', 'beta', 'running', 1, 0, 0);"
        "INSERT INTO experiment_phases VALUES (1, 1, 'alpha', '[0.5,0.5]', 1767225600000, NULL),"
        " (2, 1, 'beta', '[0.5,0.5]', 1767225600000, NULL);"
        "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
        " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5),"
        " (2, 0, 'control', 0.5), (2, 1, 'treatment', 0.5);"
        "INSERT INTO experiment_metrics VALUES (1, 1, 'goal'), (2, 1, 'goal');");
    exec_ok(events,
            "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, received_at, unit,"
            " experiment, variant, source) VALUES"
            " ('a', 1, 0, 'exposure', 1767229200000, 1767229200000, 1767229200000, 'u1', 'alpha',"
            "  'control', 'events'),"
            " ('b', 2, 0, 'exposure', 1767229200000, 1767229200000, 1767229200000, 'u2', 'alpha',"
            "  'treatment', 'events'),"
            " ('c', 3, 0, 'exposure', 1767229200000, 1767229200000, 1767229200000, 'u3', 'beta',"
            "  'control', 'events')");
    ab_db_close(control);
    ab_db_close(events);
    ab_clock_fixed_init(&w->clock, JAN3);
    struct analyze_refresh_config cfg = {.control_db = w->control_path,
                                         .store = {.events_db = w->events_path},
                                         .every_ms = HOUR,
                                         .retry_ms = 30000,
                                         .clock = &w->clock.clock,
                                         .log = &w->log};
    return analyze_refresh_new(&cfg, &w->r, &ei) == AB_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    analyze_refresh_free(g_w.r);
    remove_tree(g_w.dir);
    if (g_w.devnull >= 0)
        close(g_w.devnull);
    return 0;
}

/* One step at the clock's now; returns whether it ran an analysis, *next the next due time. */
static int step(int64_t *next)
{
    int ran = 0;
    struct ab_errinfo ei;
    if (analyze_refresh_tick(g_w.r, &ran, next, &ei) != AB_OK)
        fail_msg("tick: %s", ei.message);
    return ran;
}

static void set_now(int64_t ms)
{
    g_w.clock.now_ms = ms;
}

/* key's answer (results with "refresh"), or NULL with *rc set. */
static json_t *get(const char *key, enum ab_err *rc)
{
    json_t *out = NULL;
    struct ab_errinfo ei;
    *rc = analyze_refresh_get(g_w.r, key, 0, &out, &ei);
    return out;
}

static int64_t history_len(const char *key)
{
    json_t *h = NULL;
    struct ab_errinfo ei;
    assert_int_equal(analyze_refresh_history(g_w.r, key, &h, &ei), AB_OK);
    int64_t n = (int64_t)json_array_size(json_object_get(h, "history"));
    json_decref(h);
    return n;
}

static int64_t parse_rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_non_null(s);
    assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
    return (int64_t)timegm(&tm) * 1000;
}

static void test_slots_interval_one_at_a_time(void **state)
{
    (void)state;
    int64_t next = 0;
    set_now(JAN3);
    /* no results yet: each experiment waits for its slot in the coming hour */
    assert_false(step(&next));
    assert_true(next > JAN3 && next <= JAN3 + HOUR);
    enum ab_err rc;
    assert_null(get("alpha", &rc));
    assert_int_equal(rc, AB_ERR_NOT_FOUND);
    /* a millisecond early: nothing; at the slot: exactly one experiment */
    set_now(next - 1);
    assert_false(step(&next));
    int64_t first = next;
    set_now(first);
    assert_true(step(&next));
    json_t *a = get("alpha", &rc), *b = get("beta", &rc);
    assert_true((a != NULL) != (b != NULL));
    const char *done = a != NULL ? "alpha" : "beta", *other = a != NULL ? "beta" : "alpha";
    json_t *r = a != NULL ? a : b;
    const json_t *refresh = json_object_get(r, "refresh");
    /* next_at is the same slot an hour later; the other experiment's slot is elsewhere */
    int64_t next_done = parse_rfc3339(json_string_value(json_object_get(refresh, "next_at")));
    assert_true(next_done / 1000 == (first + HOUR) / 1000);
    assert_int_equal(json_integer_value(json_object_get(refresh, "every_seconds")), 3600);
    assert_true(json_is_false(json_object_get(refresh, "stale")));
    json_decref(r);
    assert_true(next > first && next < first + HOUR); /* the other one, later in the hour */
    set_now(next);
    assert_true(step(&next));
    json_t *o = get(other, &rc);
    assert_non_null(o);
    json_decref(o);
    /* an hour after the first computation: the first experiment again, once */
    set_now(first + HOUR);
    assert_true(step(&next));
    assert_false(step(&next));
    assert_int_equal(history_len(done), 2);
    assert_int_equal(history_len(other), 1);
}

static void test_failure_stale_backoff(void **state)
{
    (void)state;
    struct ab_errinfo ei;
    struct ab_db *control = NULL;
    struct ab_db_options o = {0};
    assert_int_equal(ab_db_open(g_w.control_path, &o, &control, &ei), AB_OK);
    exec_ok(control, "UPDATE experiments SET status = 'paused' WHERE key = 'beta'");
    ab_db_close(control);
    const char *failed = "alpha";
    int64_t next = 0;
    set_now(JAN3);
    assert_false(step(&next));
    set_now(next);
    assert_true(step(&next)); /* alpha's first results */
    int64_t due = next;
    /* the events store goes away before the next refresh */
    assert_int_equal(rename(g_w.events_path, g_w.moved_path), 0);
    set_now(due);
    assert_true(step(&next));
    enum ab_err rc;
    json_t *r = get(failed, &rc);
    assert_non_null(r); /* the results stay, marked stale with the error */
    const json_t *refresh = json_object_get(r, "refresh");
    assert_true(json_is_true(json_object_get(refresh, "stale")));
    const json_t *err = json_object_get(refresh, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "unavailable");
    assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "events.db"));
    json_decref(r);
    /* retried after 30 s, then 60 s, 120 s ..., never later than the interval */
    int64_t wait = 30000, at = due;
    for (int i = 0; i < 9; i++) {
        json_t *x = get(failed, &rc);
        int64_t n = parse_rfc3339(
            json_string_value(json_object_get(json_object_get(x, "refresh"), "next_at")));
        json_decref(x);
        int64_t expect = at + (wait < HOUR ? wait : HOUR);
        assert_true(n / 1000 == expect / 1000);
        assert_true(next == expect);
        set_now(expect - 1);
        assert_false(step(&next));
        set_now(expect);
        at = expect;
        assert_true(step(&next));
        wait *= 2;
    }
    /* the store is back: the next retry succeeds and the results are fresh again */
    assert_int_equal(rename(g_w.moved_path, g_w.events_path), 0);
    set_now(next);
    assert_true(step(&next));
    json_t *x = get(failed, &rc);
    assert_true(json_is_false(json_object_get(json_object_get(x, "refresh"), "stale")));
    assert_true(json_is_null(json_object_get(json_object_get(x, "refresh"), "error")));
    json_decref(x);
    /* /metrics counted the scheduled runs and their failures */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    analyze_refresh_metrics(g_w.r, m);
    fclose(m);
    assert_non_null(strstr(text, "abacus_analyze_runs_total{trigger=\"schedule\"}"));
    assert_non_null(strstr(text, "abacus_analyze_failures_total{trigger=\"schedule\"} "));
    assert_null(strstr(text, "abacus_analyze_failures_total{trigger=\"schedule\"} 0\n"));
    assert_non_null(strstr(text, "abacus_analyze_duration_seconds_count"));
    assert_non_null(strstr(text, "abacus_analyze_oldest_result_age_seconds"));
    free(text);
}

static void test_request_and_history_as_of(void **state)
{
    (void)state;
    set_now(JAN3);
    json_t *first = NULL, *second = NULL, *old = NULL;
    struct ab_errinfo ei;
    assert_int_equal(analyze_refresh_now(g_w.r, "alpha", &first, &ei), AB_OK);
    set_now(JAN3 + 2 * HOUR);
    assert_int_equal(analyze_refresh_now(g_w.r, "alpha", &second, &ei), AB_OK);
    assert_string_equal(json_string_value(json_object_get(second, "computed_at")),
                        "2026-01-03T02:00:00Z");
    /* what the results said an hour after the first computation */
    assert_int_equal(analyze_refresh_get(g_w.r, "alpha", JAN3 + HOUR, &old, &ei), AB_OK);
    assert_string_equal(json_string_value(json_object_get(old, "computed_at")),
                        "2026-01-03T00:00:00Z");
    json_t *none = NULL;
    assert_int_equal(analyze_refresh_get(g_w.r, "alpha", JAN3 - 1, &none, &ei), AB_ERR_NOT_FOUND);
    assert_string_equal(ei.field, "as_of");
    assert_int_equal(history_len("alpha"), 2);
    assert_int_equal(analyze_refresh_now(g_w.r, "nope", &none, &ei), AB_ERR_NOT_FOUND);
    json_decref(first);
    json_decref(second);
    json_decref(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slots_interval_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_stale_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_and_history_as_of, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
