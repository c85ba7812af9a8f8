/*
 * Forwarding to a real ClickHouse (issue 9): `abacus migrate --clickhouse` twice; events posted
 * to a collector arrive once each, in seq order, and the position survives a restart; with
 * ClickHouse stopped the collector accepts up to its outbox quota, then answers 503, and the
 * backlog drains once ClickHouse is back; a batch whose answer is lost (a proxy drops it after
 * ClickHouse stored it) is re-sent and still counted once; SIGKILLs in the middle of forwarding a
 * backlog lose and duplicate nothing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "abacus/snapshot.h"
#include "ch_server.h"
#include "harness.h"

#define KEY "ch-ingest-key"
#define BASE_TS 1764000000000LL

static struct ch_server g_ch;
static struct abacus_proc g_node;
static char g_snap[512], g_db[700], g_url[200];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void write_snapshot(const char *path)
{
    struct ab_snapshot s = {0};
    s.version = 1;
    s.created_at = 1;
    s.nexperiments = 1;
    s.experiments = calloc(1, sizeof(*s.experiments));
    struct ab_snapshot_experiment *e = &s.experiments[0];
    e->key = strdup("exp");
    e->running = 1;
    e->hash_attribute = strdup("id");
    e->hash_version = 2;
    e->seed = strdup("exp");
    e->coverage = 1;
    e->phase = 1;
    e->version = 1;
    e->nvariants = 2;
    e->variants = calloc(2, sizeof(*e->variants));
    e->variants[0].key = strdup("control");
    e->variants[0].weight = 0.5;
    e->variants[0].payload = json_object();
    e->variants[1].key = strdup("treatment");
    e->variants[1].weight = 0.5;
    e->variants[1].payload = json_object();
    s.ningest_keys = 1;
    s.ingest_key_hashes = calloc(1, sizeof(char *));
    s.ingest_key_hashes[0] = malloc(65);
    ab_snapshot_key_hash(KEY, s.ingest_key_hashes[0]);
    struct ab_errinfo ei;
    if (ab_snapshot_write(&s, path, &ei) != AB_OK)
        fail_msg("cannot write snapshot: %s", ei.message);
    struct ab_snapshot *heap = malloc(sizeof(*heap));
    *heap = s;
    ab_snapshot_free(heap);
}

/* Posts n metric events with ids PREFIX-<first..first+n-1>; returns the status (0: no answer). */
static int post_events(uint16_t port, const char *prefix, int first, int n, char *retry_after)
{
    size_t cap = (size_t)n * 200 + 1024;
    char *body = malloc(cap), *req = malloc(cap + 512);
    size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(body + len, cap - len,
                                "%s{\"id\":\"%s-%06d\",\"type\":\"metric\",\"ts\":%lld,"
                                "\"unit\":\"u%d\",\"metric\":\"m\",\"value\":%d}",
                                i > first ? "," : "", prefix, i, BASE_TS + i, i % 37, i % 11);
    len += (size_t)snprintf(body + len, cap - len, "]}");
    int rl = snprintf(req, cap + 512,
                      "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Authorization: Bearer " KEY "\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      len, body);
    struct http_response r;
    int status = http_raw(port, req, (size_t)rl, &r) == 0 ? r.status : 0;
    if (status == 200) {
        json_t *doc = json_loads(r.body, 0, NULL);
        if (json_integer_value(json_object_get(doc, "accepted")) != n)
            fail_msg("expected %d accepted: %s", n, r.body);
        json_decref(doc);
    }
    if (retry_after != NULL && http_header(&r, "retry-after", retry_after, 16) == NULL)
        retry_after[0] = '\0';
    http_response_free(&r);
    free(body);
    free(req);
    return status;
}

/* A metric of the collector's /metrics (the first line starting with name + ' '), or -1. */
static double metric(uint16_t port, const char *name)
{
    struct http_response r;
    double v = -1;
    if (http_do(port, "GET", "/metrics", NULL, NULL, 0, &r) == 0 && r.body != NULL) {
        size_t n = strlen(name);
        for (const char *line = r.body; line != NULL && *line != '\0';) {
            if (strncmp(line, name, n) == 0 && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
            line = strchr(line, '\n');
            if (line != NULL)
                line++;
        }
    }
    http_response_free(&r);
    return v;
}

/* Waits (up to 90 s) until the collector's outbox is empty and forwarded reaches want. */
static void wait_drained(uint16_t port, double forwarded)
{
    for (int waited = 0; waited < 90000; waited += 100) {
        if (metric(port, "abacus_collect_forward_backlog_events") == 0 &&
            metric(port, "abacus_collect_forwarded_events_total") >= forwarded)
            return;
        sleep_ms(100);
    }
    fail_msg("the outbox did not drain: backlog %g, forwarded %g (want %g)",
             metric(port, "abacus_collect_forward_backlog_events"),
             metric(port, "abacus_collect_forwarded_events_total"), forwarded);
}

static void migrate(const char *db)
{
    snprintf(g_url, sizeof(g_url), "clickhouse://127.0.0.1:%u/%s", (unsigned)g_ch.http_port, db);
    const char *argv[] = {ABACUS_BIN, "migrate", "--clickhouse", g_url, NULL};
    char out[4096];
    if (run_command(argv, out, sizeof(out)) != 0)
        fail_msg("migrate failed: %s", out);
}

/* A fresh collector directory (events.db, snapshot) for one test. */
static void new_collector_dir(void)
{
    abacus_cleanup(&g_node);
    memset(&g_node, 0, sizeof(g_node));
    assert_int_equal(make_temp_dir(g_node.dir), 0);
    snprintf(g_snap, sizeof(g_snap), "%s/snapshot.db", g_node.dir);
    snprintf(g_db, sizeof(g_db), "%s/events.db", g_node.dir);
    write_snapshot(g_snap);
}

static void start_collector(const char *url, const char *extra1, const char *extra2)
{
    const char *args[] = {"collect", "--db", g_db, "--snapshot-file", g_snap, "--threads", "2",
                          "--forward", url, "--forward-batch", "100", extra1, extra2, NULL};
    assert_int_equal(abacus_spawn(&g_node, args), 0);
}

static long long count(const char *db, const char *query)
{
    return ch_count(&g_ch, db, query);
}

/* ---------------------------------------------------------------- tests */

static void test_migrate_idempotent(void **state)
{
    (void)state;
    snprintf(g_url, sizeof(g_url), "clickhouse://127.0.0.1:%u/t_mig", (unsigned)g_ch.http_port);
    const char *argv[] = {ABACUS_BIN, "migrate", "--clickhouse", g_url, NULL};
    char out[4096];
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "schema version 0 -> 1"));
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "schema version 1, up to date"));
    assert_int_equal(count("t_mig", "SELECT count() FROM schema_migrations"), 1);
    assert_int_equal(count("t_mig", "SELECT count() FROM system.tables WHERE database = "
                                     "'t_mig' AND name = 'events'"),
                     1);
    const char *bad[] = {ABACUS_BIN, "migrate", "--clickhouse", "http://127.0.0.1/x", NULL};
    assert_int_equal(run_command(bad, out, sizeof(out)), 2);
}

static void test_forward_in_order_survives_restart(void **state)
{
    (void)state;
    migrate("t_fwd");
    new_collector_dir();
    start_collector(g_url, NULL, NULL);
    for (int b = 0; b < 10; b++)
        assert_int_equal(post_events(g_node.port, "fwd", b * 50, 50, NULL), 200);
    wait_drained(g_node.port, 500);
    assert_int_equal(count("t_fwd", "SELECT count() FROM events"), 500);
    assert_int_equal(count("t_fwd", "SELECT uniqExact(id) FROM events"), 500);
    /* in posting order: event fwd-i is the outbox's seq i + 1 */
    assert_int_equal(count("t_fwd", "SELECT countIf(toUInt64(substring(id, 5, 6)) + 1 != seq)"
                                    " FROM events"),
                     0);
    assert_int_equal(count("t_fwd", "SELECT uniqExact(origin) FROM events"), 1);

    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    start_collector(g_url, NULL, NULL);
    /* the position came back from the events database: nothing is sent again */
    assert_true(metric(g_node.port, "abacus_collect_forward_position") == 500);
    for (int b = 10; b < 14; b++)
        assert_int_equal(post_events(g_node.port, "fwd", b * 50, 50, NULL), 200);
    wait_drained(g_node.port, 200);
    assert_true(metric(g_node.port, "abacus_collect_forwarded_events_total") == 200);
    assert_true(metric(g_node.port, "abacus_collect_forward_resent_batches_total") == 0);
    assert_int_equal(count("t_fwd", "SELECT count() FROM events"), 700);
    assert_int_equal(count("t_fwd", "SELECT uniqExact(id) FROM events"), 700);
    assert_int_equal(count("t_fwd", "SELECT countIf(toUInt64(substring(id, 5, 6)) + 1 != seq)"
                                    " FROM events"),
                     0);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
}

static void test_down_quota_then_drain(void **state)
{
    (void)state;
    migrate("t_down");
    new_collector_dir();
    start_collector(g_url, "--outbox-max-events", "500");
    assert_int_equal(post_events(g_node.port, "down", 0, 100, NULL), 200);
    wait_drained(g_node.port, 100);

    ch_stop(&g_ch);
    int acked = 100, b = 0;
    char retry[16] = "";
    int status;
    while ((status = post_events(g_node.port, "down", 100 + b * 50, 50, retry)) == 200) {
        acked += 50;
        b++;
        assert_true(b <= 10);
    }
    /* accepted up to the quota (10 x 50 = 500 unforwarded), then refused whole */
    assert_int_equal(b, 10);
    assert_int_equal(status, 503);
    assert_true(retry[0] != '\0');
    assert_true(metric(g_node.port, "abacus_collect_forward_backlog_events") == 500);
    assert_true(
        metric(g_node.port, "abacus_collect_unavailable_total{reason=\"outbox_full\"}") >= 1);
    sleep_ms(1100);
    assert_true(metric(g_node.port, "abacus_collect_forward_oldest_age_seconds") >= 1.0);
    assert_true(metric(g_node.port, "abacus_collect_forward_errors_total") >= 1);

    assert_int_equal(ch_start(&g_ch), 0);
    wait_drained(g_node.port, acked);
    assert_int_equal(count("t_down", "SELECT uniqExact(id) FROM events"), acked);
    assert_int_equal(count("t_down", "SELECT count() FROM events FINAL"), acked);
    assert_true(metric(g_node.port, "abacus_collect_forward_oldest_age_seconds") == 0);
    assert_int_equal(post_events(g_node.port, "down", 100 + b * 50, 50, NULL), 200);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
}

/* ---------------------------------------------------------------- a proxy that loses answers */

struct proxy {
    int lfd;
    uint16_t port, target;
    _Atomic int drop;          /* answers still to drop (after ClickHouse gave them) */
    _Atomic int dropped_200;   /* dropped answers that were 200 (the insert landed) */
    _Atomic int stop;
    pthread_t thread;
};

static ssize_t read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    long clen = -1;
    char *head_end = NULL;
    while (len + 1 < cap) {
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (head_end == NULL && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            clen = cl != NULL && cl < head_end ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (head_end != NULL && len >= (size_t)(head_end + 4 - buf) + (size_t)clen)
            return (ssize_t)len;
    }
    return -1;
}

static void proxy_one(struct proxy *p, int cfd)
{
    size_t cap = (size_t)64 << 20;
    char *req = malloc(cap);
    ssize_t n = read_request(cfd, req, cap);
    int ufd = n > 0 ? http_connect(p->target) : -1;
    if (ufd >= 0) {
        /* one request per connection: ask ClickHouse to close, so its answer ends at EOF */
        char *line_end = strstr(req, "\r\n");
        size_t first = (size_t)(line_end + 2 - req);
        static const char close_hdr[] = "Connection: close\r\n";
        if (send(ufd, req, first, MSG_NOSIGNAL) < 0 ||
            send(ufd, close_hdr, sizeof(close_hdr) - 1, MSG_NOSIGNAL) < 0 ||
            send(ufd, req + first, (size_t)n - first, MSG_NOSIGNAL) < 0) {
            close(ufd);
            ufd = -1;
        }
    }
    if (ufd >= 0) {
        size_t len = 0;
        ssize_t r;
        while ((r = recv(ufd, req + len, cap - 1 - len, 0)) > 0)
            len += (size_t)r;
        close(ufd);
        req[len] = '\0';
        if (atomic_load(&p->drop) > 0) {
            atomic_fetch_sub(&p->drop, 1);
            if (strncmp(req, "HTTP/1.1 200", 12) == 0)
                atomic_fetch_add(&p->dropped_200, 1);
        } else {
            send(cfd, req, len, MSG_NOSIGNAL);
        }
    }
    free(req);
    close(cfd);
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {p->lfd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd >= 0)
            proxy_one(p, cfd);
    }
    return NULL;
}

static void proxy_start(struct proxy *p, uint16_t target, int drop)
{
    memset(p, 0, sizeof(*p));
    p->target = target;
    atomic_store(&p->drop, drop);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &len), 0);
    p->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    close(p->lfd);
}

static void test_lost_answer_resent_counted_once(void **state)
{
    (void)state;
    migrate("t_lost");
    struct proxy px;
    proxy_start(&px, g_ch.http_port, 2);
    char url[200];
    snprintf(url, sizeof(url), "clickhouse://127.0.0.1:%u/t_lost", (unsigned)px.port);
    new_collector_dir();
    start_collector(url, NULL, NULL);
    for (int b = 0; b < 3; b++)
        assert_int_equal(post_events(g_node.port, "lost", b * 100, 100, NULL), 200);
    wait_drained(g_node.port, 300);
    /* ClickHouse stored the batches whose answers were lost, and they were sent again */
    assert_int_equal(atomic_load(&px.dropped_200), 2);
    assert_true(metric(g_node.port, "abacus_collect_forward_resent_batches_total") >= 2);
    assert_true(count("t_lost", "SELECT count() FROM events") >= 300);
    assert_int_equal(count("t_lost", "SELECT uniqExact(id) FROM events"), 300);
    assert_int_equal(count("t_lost", "SELECT count() FROM events FINAL"), 300);
    assert_int_equal(count("t_lost", "SELECT count() FROM (SELECT id FROM events FINAL"
                                     " GROUP BY id HAVING count() > 1)"),
                     0);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    proxy_stop(&px);
}

static void test_sigkill_mid_forward(void **state)
{
    (void)state;
    migrate("t_kill");
    new_collector_dir();
    ch_stop(&g_ch); /* a backlog to forward */
    start_collector(g_url, NULL, NULL);
    int acked = 0;
    for (int b = 0; b < 40; b++, acked += 50)
        assert_int_equal(post_events(g_node.port, "kill", b * 50, 50, NULL), 200);
    assert_int_equal(abacus_stop(&g_node, SIGKILL, 5000), 128 + SIGKILL);
    assert_int_equal(ch_start(&g_ch), 0);
    unsigned seed = 20261124;
    int mid = 0; /* kills that found events still to forward */
    for (int cycle = 0; cycle < 8; cycle++) {
        /* batches of 5 events: hundreds of INSERT + position updates to land a kill among */
        start_collector(g_url, "--forward-batch", "5");
        /* keep the collector busy taking events while it forwards */
        assert_int_equal(post_events(g_node.port, "kill", 2000 + cycle * 50, 50, NULL), 200);
        acked += 50;
        sleep_ms(20 + (int)(rand_r(&seed) % 150));
        mid += metric(g_node.port, "abacus_collect_forward_backlog_events") > 0;
        assert_int_equal(abacus_stop(&g_node, SIGKILL, 5000), 128 + SIGKILL);
    }
    printf("%d of 8 SIGKILLs landed with events still to forward\n", mid);
    assert_true(mid >= 1);
    start_collector(g_url, NULL, NULL);
    wait_drained(g_node.port, 0);
    printf("after 8 SIGKILLs: %lld rows in ClickHouse for %d acknowledged events\n",
           count("t_kill", "SELECT count() FROM events"), acked);
    assert_int_equal(count("t_kill", "SELECT uniqExact(id) FROM events"), acked);
    assert_int_equal(count("t_kill", "SELECT count() FROM events FINAL"), acked);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_ch, 0, sizeof(g_ch));
    memset(&g_node, 0, sizeof(g_node));
    return ch_start(&g_ch);
}

static int teardown(void **state)
{
    (void)state;
    abacus_cleanup(&g_node);
    ch_cleanup(&g_ch);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_idempotent),
        cmocka_unit_test(test_forward_in_order_survives_restart),
        cmocka_unit_test(test_down_quota_then_drain),
        cmocka_unit_test(test_lost_answer_resent_counted_once),
        cmocka_unit_test(test_sigkill_mid_forward),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
