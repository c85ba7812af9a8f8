/*
 * Crash test of `abacus collect`: two load-generating threads send batches of events with unique
 * ids and record which batches were acknowledged; the collector is killed with SIGKILL at a
 * pseudo-random moment (fixed seed), 50 times, and restarted on the same database. Afterwards
 * every acknowledged event is in the database exactly once, every unacknowledged batch is there
 * whole or not at all, and PRAGMA integrity_check says ok.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "abacus/snapshot.h"
#include "harness.h"

#define KEY "crash-key"
#define CYCLES 50
#define SENDERS 2
#define BATCH 20
#define MAX_BATCHES 200000

enum { UNSENT, ACKED, UNACKED };

static struct abacus_proc g_node;
static char g_snap[512], g_db[512];
static _Atomic int g_next_batch;
static _Atomic int g_stop;
static unsigned char g_state[MAX_BATCHES]; /* by batch number */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void write_snapshot(void)
{
    struct ab_snapshot s = {0};
    s.version = 1;
    s.created_at = 1;
    s.ningest_keys = 1;
    s.ingest_key_hashes = calloc(1, sizeof(char *));
    s.ingest_key_hashes[0] = malloc(65);
    ab_snapshot_key_hash(KEY, s.ingest_key_hashes[0]);
    struct ab_errinfo ei;
    if (ab_snapshot_write(&s, g_snap, &ei) != AB_OK)
        fail_msg("cannot write snapshot: %s", ei.message);
    struct ab_snapshot *heap = malloc(sizeof(*heap));
    *heap = s;
    ab_snapshot_free(heap);
}

static void *sender_main(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    char body[8192], req[9216];
    while (!atomic_load(&g_stop)) {
        int b = atomic_fetch_add(&g_next_batch, 1);
        if (b >= MAX_BATCHES)
            break;
        size_t len = (size_t)snprintf(body, sizeof(body), "{\"events\":[");
        for (int i = 0; i < BATCH; i++)
            len += (size_t)snprintf(body + len, sizeof(body) - len,
                                    "%s{\"id\":\"B%06dE%02d\",\"type\":\"metric\",\"ts\":%d,"
                                    "\"unit\":\"u%d\",\"metric\":\"m\",\"value\":%d}",
                                    i ? "," : "", b, i, 1000000 + b, i, i);
        len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
        int n = snprintf(req, sizeof(req),
                         "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         "Authorization: Bearer " KEY "\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         len, body);
        struct http_response r;
        g_state[b] = UNACKED; /* until a 200 says otherwise */
        if (http_raw(port, req, (size_t)n, &r) != 0)
            break; /* the collector is gone */
        if (r.status == 200) {
            json_t *doc = json_loads(r.body, 0, NULL);
            if (json_integer_value(json_object_get(doc, "accepted")) == BATCH)
                g_state[b] = ACKED;
            json_decref(doc);
        }
        http_response_free(&r);
        if (r.status != 200)
            break;
    }
    return NULL;
}

static void test_sigkill_50_times(void **state)
{
    (void)state;
    memset(&g_node, 0, sizeof(g_node));
    assert_int_equal(make_temp_dir(g_node.dir), 0);
    snprintf(g_snap, sizeof(g_snap), "%s/snapshot.db", g_node.dir);
    snprintf(g_db, sizeof(g_db), "%s/events.db", g_node.dir);
    write_snapshot();
    const char *args[] = {"collect", "--db", g_db, "--snapshot-file", g_snap, "--threads", "2",
                          NULL};
    unsigned seed = 20261124;
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        assert_int_equal(abacus_spawn(&g_node, args), 0);
        atomic_store(&g_stop, 0);
        pthread_t t[SENDERS];
        for (int i = 0; i < SENDERS; i++)
            assert_int_equal(pthread_create(&t[i], NULL, sender_main,
                                            (void *)(uintptr_t)g_node.port),
                             0);
        sleep_ms(30 + (int)(rand_r(&seed) % 200));
        assert_int_equal(abacus_stop(&g_node, SIGKILL, 5000), 128 + SIGKILL);
        atomic_store(&g_stop, 1);
        for (int i = 0; i < SENDERS; i++)
            pthread_join(t[i], NULL);
    }
    int sent = atomic_load(&g_next_batch);
    assert_true(sent < MAX_BATCHES);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);

    int *rows = calloc((size_t)sent, sizeof(int));
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT CAST(substr(id, 2, 6) AS INTEGER), count(*), "
                                        "count(DISTINCT id) FROM events GROUP BY 1",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int b = sqlite3_column_int(st, 0);
        if (b < 0 || b >= sent)
            fail_msg("rows of a batch never sent: %d", b);
        rows[b] = sqlite3_column_int(st, 1);
        if (sqlite3_column_int(st, 2) != rows[b])
            fail_msg("batch %d: an id stored twice", b);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    int acked = 0, unacked_whole = 0, unacked_absent = 0;
    for (int b = 0; b < sent; b++) {
        if (g_state[b] == ACKED) {
            if (rows[b] != BATCH)
                fail_msg("acknowledged batch %d has %d of %d events", b, rows[b], BATCH);
            acked++;
        } else if (rows[b] == BATCH) {
            unacked_whole++;
        } else if (rows[b] == 0) {
            unacked_absent++;
        } else {
            fail_msg("unacknowledged batch %d is partly stored: %d of %d", b, rows[b], BATCH);
        }
    }
    free(rows);
    printf("crash test: %d batches sent, %d acknowledged, unacknowledged: %d whole, %d absent\n",
           sent, acked, unacked_whole, unacked_absent);
    assert_true(acked > 0);
    abacus_cleanup(&g_node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_sigkill_50_times)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
