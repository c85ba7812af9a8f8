/*
 * Tests of the collector's store (collect/store.c) on a real temporary SQLite file: batches go
 * through the writer thread and come back committed; duplicates across and within batches;
 * a 64-bit hash collision within one millisecond (forced here) takes the next slot and is still
 * found again by its full id; rejected events are stored with their reason.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "harness.h"
#include "collect_int.h"

static char g_dir[256], g_path[512];
static struct collect_store *g_store;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_done;

static int setup(void **state)
{
    (void)state;
    if (make_temp_dir(g_dir) != 0)
        return -1;
    snprintf(g_path, sizeof(g_path), "%s/events.db", g_dir);
    struct collect_store_config cfg = {.path = g_path, .queue_max_events = 1000};
    struct ab_errinfo ei;
    if (collect_store_open(&cfg, &g_store, &ei) != AB_OK) {
        fprintf(stderr, "%s\n", ei.message);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    collect_store_close(g_store);
    remove_tree(g_dir);
    return 0;
}

static void done_cb(struct collect_batch *b)
{
    (void)b;
    pthread_mutex_lock(&g_mu);
    g_done = 1;
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static struct collect_batch *parse(const char *body)
{
    struct collect_batch *b = NULL;
    struct ab_errinfo ei;
    if (collect_parse(body, strlen(body), COLLECT_FORMAT_JSON, NULL, 1795524362123LL, &b, &ei) !=
        AB_OK)
        fail_msg("%s", ei.message);
    return b;
}

/* Stores b and waits until the writer is done with it. */
static void store(struct collect_batch *b)
{
    b->done_cb = done_cb;
    g_done = 0;
    assert_int_equal(collect_store_submit(g_store, b), AB_OK);
    pthread_mutex_lock(&g_mu);
    while (!g_done)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(b->rc, AB_OK);
}

static long long query_int(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(g_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static const char *const BODY =
    "{\"events\":[{\"id\":\"a\",\"type\":\"metric\",\"ts\":7,\"unit\":\"u\",\"metric\":\"m\"},"
    "{\"id\":\"b\",\"type\":\"metric\",\"ts\":7,\"unit\":\"u\",\"metric\":\"m\",\"value\":2},"
    "{\"id\":\"a\",\"type\":\"metric\",\"ts\":7,\"unit\":\"u\",\"metric\":\"m\",\"value\":5},"
    "{\"type\":\"metric\"}]}";

static void test_duplicates_and_rejections(void **state)
{
    (void)state;
    struct collect_batch *b = parse(BODY);
    store(b);
    assert_int_equal(b->accepted, 2);
    assert_int_equal(b->duplicates, 1);
    assert_int_equal(b->conflicts, 1); /* "a" again with another value: the first is kept */
    collect_batch_free(b);
    assert_int_equal(query_int("SELECT count(*) FROM events"), 2);
    assert_int_equal(query_int("SELECT value FROM events WHERE id = 'a'"), 1);
    assert_int_equal(query_int("SELECT count(*) FROM rejected_events WHERE code = "
                               "'missing_field' AND field = 'events[3].id' AND request_index = 3"),
                     1);
    b = parse(BODY);
    store(b);
    assert_int_equal(b->accepted, 0);
    assert_int_equal(b->duplicates, 3);
    collect_batch_free(b);
    assert_int_equal(query_int("SELECT count(*) FROM events"), 2);
    struct collect_stats *s = collect_store_stats(g_store);
    assert_int_equal(atomic_load(&s->accepted), 2);
    assert_int_equal(atomic_load(&s->duplicates), 4);
    assert_int_equal(atomic_load(&s->rejected[COLLECT_MISSING_FIELD]), 2);
    assert_int_equal(atomic_load(&s->commits), 2);
}

static void test_hash_collision_probes(void **state)
{
    (void)state;
    const char *body =
        "{\"events\":[{\"id\":\"x\",\"type\":\"metric\",\"ts\":9,\"unit\":\"u\",\"metric\":\"m\"},"
        "{\"id\":\"y\",\"type\":\"metric\",\"ts\":9,\"unit\":\"u\",\"metric\":\"m\"},"
        "{\"id\":\"z\",\"type\":\"metric\",\"ts\":9,\"unit\":\"u\",\"metric\":\"m\"}]}";
    for (int round = 0; round < 2; round++) {
        struct collect_batch *b = parse(body);
        /* three ids with one hash in one millisecond: slots h, h+1, h+2 */
        b->events[1].id_hash = b->events[0].id_hash;
        b->events[2].id_hash = b->events[0].id_hash;
        store(b);
        assert_int_equal(b->accepted, round == 0 ? 3 : 0);
        assert_int_equal(b->duplicates, round == 0 ? 0 : 3);
        assert_int_equal(b->conflicts, 0);
        collect_batch_free(b);
    }
    assert_int_equal(query_int("SELECT count(*) FROM events"), 3);
    assert_int_equal(query_int("SELECT count(DISTINCT id_hash) FROM events"), 3);
    assert_int_equal(query_int("SELECT max(id_hash) - min(id_hash) FROM events"), 2);
}

/* The recent-ids map: what was put is found, an overwrite keeps the newest timestamp, and after
 * any number of puts at least the last half-window is still there, in bounded memory. */
static void test_recent_ids(void **state)
{
    (void)state;
    assert_null(collect_recent_new(1));
    struct collect_recent *r = collect_recent_new(1000);
    int64_t ts = 0;
    assert_int_equal(collect_recent_get(r, 42, &ts), 0);
    collect_recent_put(r, 42, 7);
    collect_recent_put(r, 0, 8); /* 0 is a hash like any other */
    assert_int_equal(collect_recent_get(r, 42, &ts), 1);
    assert_int_equal(ts, 7);
    assert_int_equal(collect_recent_get(r, 0, &ts), 1);
    assert_int_equal(ts, 8);
    collect_recent_put(r, 42, 9);
    assert_int_equal(collect_recent_get(r, 42, &ts), 1);
    assert_int_equal(ts, 9);
    for (int64_t i = 1000; i < 100000; i++) {
        collect_recent_put(r, i * 7919, i);
        /* the last 500 puts are always there */
        int64_t back = i - 499 > 1000 ? i - 499 : 1000;
        assert_int_equal(collect_recent_get(r, back * 7919, &ts), 1);
        assert_int_equal(ts, back);
    }
    assert_int_equal(collect_recent_get(r, 1000 * 7919, &ts), 0); /* long gone */
    collect_recent_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_duplicates_and_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_collision_probes, setup, teardown),
        cmocka_unit_test(test_recent_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
