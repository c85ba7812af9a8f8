/*
 * Forwarding to a real ClickHouse: `abacus migrate --clickhouse` twice; events posted
 * to a collector arrive once each, in seq order, and the position survives a restart; with
 * ClickHouse stopped the collector accepts up to its outbox quota, then answers 503, and the
 * backlog drains once ClickHouse is back; a batch whose answer is lost (a proxy drops it after
 * ClickHouse stored it) is re-sent and still counted once; SIGKILLs in the middle of forwarding a
 * backlog lose and duplicate nothing. And the analysis: the same seeded events posted to a
 * collector that forwards them (with lost answers, so ClickHouse holds re-sent rows) give the
 * same aggregates and the same results JSON from SQLite and from ClickHouse. And the control
 * plane on ClickHouse: abacus up forwarding there, its local events pruned, answers "Update
 * results", the scheduled refresh and the nightly report from ClickHouse, equal to abacus analyze
 * on SQLite over every event; with ClickHouse stopped the results stay, marked stale.
 */
#include <arpa/inet.h>
#include <math.h>
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "abacus/clickhouse.h"
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "abacus/snapshot.h"
#include "analyze.h"
#include "analyze_int.h"
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
    static char log[16384];
    abacus_log(&g_node, log, sizeof(log));
    fail_msg("the outbox did not drain: backlog %g, forwarded %g (want %g); the node's log:\n%s",
             metric(port, "abacus_collect_forward_backlog_events"),
             metric(port, "abacus_collect_forwarded_events_total"), forwarded, log);
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

/* Forwarded events received before the retention period are deleted locally, the newest kept. */
static void test_retention_prunes_forwarded(void **state)
{
    (void)state;
    migrate("t_prune");
    new_collector_dir();
    start_collector(g_url, NULL, NULL); /* creates the events database */
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(g_db, &db), SQLITE_OK);
    /* 300 events received 3 days ago, then 50 received now */
    assert_int_equal(
        sqlite3_exec(db,
                     "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 349)"
                     " INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts,"
                     " received_at, unit, metric, value, source)"
                     " SELECT 'old-' || i, i, 0, 'metric', 1764000000000 + i, 1764000000000 + i,"
                     " CASE WHEN i < 300 THEN CAST(strftime('%s', 'now') AS INTEGER) * 1000"
                     " - 3 * 86400000 ELSE CAST(strftime('%s', 'now') AS INTEGER) * 1000 END,"
                     " 'u', 'm', 1, 'events' FROM n",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    start_collector(g_url, "--retention-days", "1");
    wait_drained(g_node.port, 350);
    for (int waited = 0; waited < 30000; waited += 100) {
        if (metric(g_node.port, "abacus_collect_forward_pruned_events_total") >= 300)
            break;
        sleep_ms(100);
    }
    assert_true(metric(g_node.port, "abacus_collect_forward_pruned_events_total") == 300);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    assert_int_equal(sqlite3_open(g_db, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), min(seq) FROM events", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 50); /* the recent ones stay */
    assert_int_equal(sqlite3_column_int(st, 1), 301);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(count("t_prune", "SELECT count() FROM events"), 350);
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

/* ---------------------------------------------------------------- analysis: SQLite = ClickHouse */

#define UNITS 400
#define DAY 86400000LL
#define START 1767225600000LL /* 2026-01-01T00:00:00Z, the phase start */
#define THROUGH_TEXT "2026-01-06T12:00:00Z"
#define THROUGH (START + 5 * DAY + DAY / 2)

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

/* Seeded traffic as in tests/unit/test_analyze.c, as event JSON objects: exposures (some
 * repeated, some to both variants, some before the phase or after the as-of time) and metric
 * events before and after them. */
static json_t *generate_events(void)
{
    json_t *all = json_array();
    int n = 0;
    for (int u = 0; u < UNITS; u++) {
        char unit[32], id[32];
        snprintf(unit, sizeof(unit), "unit-%d", u);
        int variant = (int)(rnd() % 2);
        int64_t t0 = rnd_range(START - DAY, START + 6 * DAY);
        int nexp = 1 + (int)(rnd() % 3);
        for (int k = 0; k < nexp; k++) {
            int v = (u % 25 == 0 && k == 1) ? 1 - variant : variant;
            snprintf(id, sizeof(id), "ev-%d", n++);
            json_array_append_new(
                all, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", id, "type", "exposure", "ts",
                               (json_int_t)(t0 + k * (int64_t)(rnd() % (3 * DAY))), "unit", unit,
                               "experiment", "exp", "variant", v ? "treatment" : "control"));
        }
        int nmet = (int)(rnd() % 8);
        for (int k = 0; k < nmet; k++) {
            const char *m = METRICS[rnd() % 3];
            double value = m == METRICS[0] ? 1 : (double)(rnd() % 10000) / 100.0;
            int64_t ts = rnd_range(t0 - 10 * DAY, t0 + 5 * DAY);
            snprintf(id, sizeof(id), "ev-%d", n++);
            json_array_append_new(all, json_pack("{s:s, s:s, s:I, s:s, s:s, s:f}", "id", id,
                                                 "type", "metric", "ts", (json_int_t)ts, "unit",
                                                 unit, "metric", m, "value", value));
        }
    }
    return all;
}

static void post_json(uint16_t port, json_t *events, size_t from, size_t to)
{
    json_t *part = json_array();
    for (size_t i = from; i < to; i++)
        json_array_append(part, json_array_get(events, i));
    json_t *doc = json_pack("{s:o}", "events", part);
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    size_t len = strlen(body);
    char *req = malloc(len + 512);
    int n = snprintf(req, len + 512,
                     "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer " KEY "\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     len, body);
    struct http_response r;
    assert_int_equal(http_raw(port, req, (size_t)n, &r), 0);
    if (r.status != 200 || strstr(r.body, "\"rejected\":[]") == NULL)
        fail_msg("posting events: %d %s", r.status, r.body);
    http_response_free(&r);
    free(req);
    free(body);
}

static void exec_ok(struct ab_db *db, const char *sql)
{
    struct ab_errinfo ei;
    if (ab_db_exec(db, sql, &ei) != AB_OK)
        fail_msg("%s: %s", sql, ei.message);
}

/* The control database of tests/unit/test_analyze.c: experiment exp, three metrics. */
static void write_control(const char *path)
{
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    struct ab_db *db;
    struct ab_errinfo ei;
    assert_int_equal(ab_db_open(path, &o, &db, &ei), AB_OK);
    assert_int_equal(ab_migrate(db, ab_migrations, ab_migrations_count, NULL, NULL, &ei), AB_OK);
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
    ab_db_close(db);
}

static int close_enough(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(1, fabs(b));
}

/* Every number of a within 1e-9 (relative) of b's, everything else equal; path names a miss. */
static int json_close(const json_t *a, const json_t *b, char *path, size_t cap)
{
    if (json_is_number(a) && json_is_number(b))
        return close_enough(json_number_value(a), json_number_value(b));
    if (json_typeof(a) != json_typeof(b))
        return 0;
    size_t len = strlen(path);
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            snprintf(path + len, cap - len, ".%s", k);
            if (!json_close(v, json_object_get(b, k), path, cap))
                return 0;
        }
        path[len] = '\0';
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(path + len, cap - len, "[%zu]", i);
            if (!json_close(json_array_get(a, i), json_array_get(b, i), path, cap))
                return 0;
        }
        path[len] = '\0';
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static json_t *analyze_cli(const char *store)
{
    const char *argv[] = {ABACUS_BIN, "analyze", "--data-dir", g_node.dir, "--experiment", "exp",
                          "--json", "--at", THROUGH_TEXT, store != NULL ? "--events-store" : NULL,
                          store, NULL};
    size_t cap = (size_t)4 << 20;
    char *out = malloc(cap);
    int code = run_command(argv, out, cap);
    if (code != 0)
        fail_msg("abacus analyze%s failed: %s", store != NULL ? " --store" : "", out);
    /* the log lines (stderr) come after the JSON's closing brace */
    char *json_start = strchr(out, '{');
    json_error_t jerr;
    json_t *doc = json_start != NULL ? json_loads(json_start, JSON_DISABLE_EOF_CHECK, &jerr)
                                     : NULL;
    if (doc == NULL)
        fail_msg("abacus analyze printed no JSON: %s", out);
    free(out);
    return doc;
}

static void test_analysis_clickhouse_equals_sqlite(void **state)
{
    (void)state;
    migrate("t_an");
    struct proxy px;
    proxy_start(&px, g_ch.http_port, 3); /* three answers lost: re-sent rows in ClickHouse */
    char url[200];
    snprintf(url, sizeof(url), "clickhouse://127.0.0.1:%u/t_an", (unsigned)px.port);
    new_collector_dir();
    start_collector(url, "--forward-batch", "300");
    json_t *events = generate_events();
    size_t n = json_array_size(events);
    for (size_t i = 0; i < n; i += 500)
        post_json(g_node.port, events, i, i + 500 < n ? i + 500 : n);
    wait_drained(g_node.port, (double)n);
    assert_int_equal(atomic_load(&px.dropped_200), 3);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    proxy_stop(&px);
    json_decref(events);
    /* merges may already have folded the re-sent rows: store every metric event a second time,
     * with merges stopped, so the analysis must deduplicate by itself (merged first: a FINAL
     * read over every part the forwarder's INSERTs left would exceed the test server's memory
     * limit) */
    assert_int_equal(ch_query(&g_ch, "t_an", "OPTIMIZE TABLE events FINAL", NULL), 200);
    assert_int_equal(ch_query(&g_ch, "t_an", "SYSTEM STOP MERGES", NULL), 200);
    assert_int_equal(ch_query(&g_ch, "t_an",
                              "INSERT INTO events SELECT * FROM events FINAL WHERE type = 'metric'",
                              NULL),
                     200);
    long long rows = count("t_an", "SELECT count() FROM events");
    printf("analysis: %zu events, %lld rows in ClickHouse\n", n, rows);
    assert_true(rows > (long long)n + 500);
    assert_int_equal(count("t_an", "SELECT uniqExact(id) FROM events"), (long long)n);

    char control[600];
    snprintf(control, sizeof(control), "%s/abacus.db", g_node.dir);
    write_control(control);

    /* the aggregates, cell by cell */
    struct ab_db_options ro = {.readonly = 1};
    struct ab_db *cdb, *edb;
    struct ab_errinfo ei;
    assert_int_equal(ab_db_open(control, &ro, &cdb, &ei), AB_OK);
    assert_int_equal(ab_db_open(g_db, &ro, &edb, &ei), AB_OK);
    struct ab_ch_url chu;
    snprintf(url, sizeof(url), "clickhouse://127.0.0.1:%u/t_an", (unsigned)g_ch.http_port);
    assert_int_equal(ab_ch_url_parse(url, strlen(url), &chu, &ei), AB_OK);
    struct ab_ch *ch;
    assert_int_equal(ab_ch_new(&chu, 60000, &ch, &ei), AB_OK);
    struct analyze_experiment_def *def;
    assert_int_equal(analyze_sql_load_def(cdb, "exp", &def, &ei), AB_OK);
    struct analyze_agg *sa, *ca;
    assert_int_equal(analyze_sql_aggregate(edb, def, THROUGH, &sa, &ei), AB_OK);
    if (analyze_ch_aggregate(&ch, 1, "events", def, THROUGH, &ca, &ei) != AB_OK)
        fail_msg("ClickHouse aggregation: %s", ei.message);
    assert_int_equal(ca->ndays, sa->ndays);
    for (size_t v = 0; v < sa->nvariants; v++)
        assert_int_equal(ca->units[v], sa->units[v]);
    assert_true(sa->units[0] > 0 && sa->units[1] > 0);
    assert_int_equal(ca->multiple_exposures, sa->multiple_exposures);
    assert_true(sa->multiple_exposures > 0);
    assert_int_equal(ca->unknown_variant, sa->unknown_variant);
    assert_int_equal(ca->data_through_ms, sa->data_through_ms);
    int cells = 0;
    for (size_t m = 0; m < sa->nmetrics; m++)
        for (size_t v = 0; v < sa->nvariants; v++)
            for (size_t d = 0; d < sa->ndays; d++) {
                const struct analyze_sums *s = &analyze_agg_cell(sa, m, v, d)->sums;
                const struct analyze_sums *c = &analyze_agg_cell(ca, m, v, d)->sums;
                const double got[] = {c->n, c->sum_y, c->sum_yy, c->sum_x, c->sum_xx, c->sum_xy};
                const double want[] = {s->n, s->sum_y, s->sum_yy, s->sum_x, s->sum_xx, s->sum_xy};
                for (int k = 0; k < 6; k++) {
                    if (!close_enough(got[k], want[k]))
                        fail_msg("metric %zu variant %zu day %zu sum %d: ClickHouse %.17g, "
                                 "SQLite %.17g",
                                 m, v, d, k, got[k], want[k]);
                    cells += want[k] != 0;
                }
            }
    assert_true(cells > 100);
    analyze_agg_free(sa);
    analyze_agg_free(ca);
    analyze_experiment_def_free(def);
    ab_ch_free(ch);
    ab_db_close(edb);
    ab_db_close(cdb);

    /* the results JSON of `abacus analyze`, from each store */
    json_t *from_sqlite = analyze_cli(NULL);
    json_t *from_ch = analyze_cli(url);
    char path[512] = "";
    if (!json_close(from_ch, from_sqlite, path, sizeof(path)))
        fail_msg("results differ at %s", path[0] != '\0' ? path : "(top)");
    assert_true(json_array_size(json_object_get(from_sqlite, "metrics")) == 3);
    json_decref(from_sqlite);
    json_decref(from_ch);

    /* an experiment without metrics: its units and data time alone, from each store */
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    struct ab_db *db;
    assert_int_equal(ab_db_open(control, &o, &db, &ei), AB_OK);
    exec_ok(db, "DELETE FROM experiment_metrics");
    ab_db_close(db);
    from_sqlite = analyze_cli(NULL);
    from_ch = analyze_cli(url);
    path[0] = '\0';
    if (!json_close(from_ch, from_sqlite, path, sizeof(path)))
        fail_msg("results without metrics differ at %s", path[0] != '\0' ? path : "(top)");
    assert_int_equal(json_array_size(json_object_get(from_ch, "metrics")), 0);
    assert_true(json_integer_value(json_object_get(
                    json_object_get(json_object_get(from_ch, "units"), "by_variant"), "control")) >
                0);
    json_decref(from_sqlite);
    json_decref(from_ch);
    assert_int_equal(ch_query(&g_ch, "t_an", "SYSTEM START MERGES", NULL), 200);
}

/* ---------------------------------------------------------------- the control plane's store */

/* An admin API call to up with the admin key; the answer's JSON (or NULL) into *out. */
static int admin_call(uint16_t port, const char *key, const char *method, const char *path,
                      json_t **out)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                     method, path, key);
    struct http_response r;
    assert_int_equal(http_raw(port, req, (size_t)n, &r), 0);
    if (out != NULL) {
        json_error_t jerr;
        *out = json_loads(r.body, 0, &jerr);
        if (*out == NULL)
            fail_msg("%s %s: %d, not JSON (%s at %d) in %zu bytes: ...%.200s", method, path,
                     r.status, jerr.text, jerr.position, r.body_len,
                     r.body != NULL && (size_t)jerr.position < r.body_len + 100
                         ? r.body + (jerr.position > 100 ? jerr.position - 100 : 0)
                         : "");
    }
    int status = r.status;
    http_response_free(&r);
    return status;
}

/* A consistent copy of the SQLite database src at dst (sqlite3's online backup). */
static void backup(const char *src, const char *dst)
{
    char cmd[2200];
    snprintf(cmd, sizeof(cmd), ".backup '%s'", dst);
    const char *argv[] = {"/usr/bin/sqlite3", src, cmd, NULL};
    char out[4096];
    if (run_command(argv, out, sizeof(out)) != 0)
        fail_msg("sqlite3 .backup %s: %s", src, out);
}

/* results without when and how they were computed */
static json_t *numbers(const json_t *r)
{
    json_t *c = json_deep_copy(r);
    json_object_del(c, "computed_at");
    json_object_del(c, "refresh");
    return c;
}

static void expect_close(const json_t *got, const json_t *want, const char *what)
{
    json_t *a = numbers(got), *b = numbers(want);
    char path[512] = "";
    if (!json_close(a, b, path, sizeof(path)))
        fail_msg("%s differs from abacus analyze on SQLite at %s", what,
                 path[0] != '\0' ? path : "(top)");
    json_decref(a);
    json_decref(b);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc((size_t)8 << 20);
    size_t n = fread(buf, 1, ((size_t)8 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void report(const char *data_dir, const char *store, const char *out)
{
    const char *argv[] = {ABACUS_BIN,  "report", "--date", "2026-01-05", "--data-dir", data_dir,
                          "--out",     out,      store != NULL ? "--events-store" : NULL,
                          store,       NULL};
    char buf[8192];
    if (run_command(argv, buf, sizeof(buf)) != 0)
        fail_msg("abacus report%s failed: %s", store != NULL ? " --events-store" : "", buf);
}

/*
 * abacus up forwarding to ClickHouse, its local events pruned (as --retention-days does once
 * they are forwarded): the results API, the scheduled refresh and the nightly report read
 * ClickHouse and equal abacus analyze on SQLite over every event, to 1e-9; with ClickHouse down
 * the stored results stay served, marked stale with the error, and the next update after it is
 * back succeeds.
 */
#define ANALYZE_PATH "/api/v1/experiments/exp/analyze"
#define RESULTS_PATH "/api/v1/experiments/exp/results"

static void test_up_results_from_clickhouse(void **state)
{
    (void)state;
    migrate("t_up");
    char url[200];
    snprintf(url, sizeof(url), "%s", g_url);
    abacus_cleanup(&g_node);
    memset(&g_node, 0, sizeof(g_node));
    assert_int_equal(make_temp_dir(g_node.dir), 0);
    char data[600], control[700], events_db[700], full[600], path[800];
    snprintf(data, sizeof(data), "%s/data", g_node.dir);
    snprintf(control, sizeof(control), "%s/abacus.db", data);
    snprintf(events_db, sizeof(events_db), "%s/events.db", data);
    snprintf(full, sizeof(full), "%s/full", g_node.dir);
    assert_int_equal(mkdir(data, 0700), 0);
    assert_int_equal(mkdir(full, 0700), 0);
    /* the experiment of write_control, running since 2026-01-01, and an ingest key */
    write_control(control);
    char hash[65], sql[400];
    ab_snapshot_key_hash(KEY, hash);
    snprintf(sql, sizeof(sql),
             "INSERT INTO api_keys (kind, name, prefix, key_hash, created_by, created_at)"
             " VALUES ('ingest', 'test', 'ing_test', '%s', 'test', 0)",
             hash);
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    struct ab_db *db;
    struct ab_errinfo ei;
    assert_int_equal(ab_db_open(control, &o, &db, &ei), AB_OK);
    exec_ok(db, sql);
    ab_db_close(db);
    const char *args[] = {"up", "--data-dir", data, "--forward", url, "--forward-batch", "300",
                          "--analyze-every", "2s", "--report-at", "off", "--threads", "2", NULL};
    assert_int_equal(abacus_spawn(&g_node, args), 0);
    char admin[256];
    snprintf(path, sizeof(path), "%s/admin.key", data);
    char *k = read_all(path);
    assert_non_null(k);
    snprintf(admin, sizeof(admin), "%.*s", (int)strcspn(k, "\r\n"), k);
    free(k);
    /* the collector is ready once the first snapshot (with the ingest key) is published */
    for (int i = 0; i < 100; i++) {
        struct http_response r;
        assert_int_equal(http_do(g_node.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
        int ok = r.status == 200;
        http_response_free(&r);
        if (ok)
            break;
        sleep_ms(100);
    }
    json_t *events = generate_events();
    size_t n = json_array_size(events);
    for (size_t i = 0; i < n; i += 500)
        post_json(g_node.port, events, i, i + 500 < n ? i + 500 : n);
    json_decref(events);
    wait_drained(g_node.port, (double)n);
    /* every event, kept aside; then the local copy pruned as retention prunes forwarded ones */
    char copy[700];
    snprintf(copy, sizeof(copy), "%s/events.db", full);
    backup(events_db, copy);
    snprintf(copy, sizeof(copy), "%s/abacus.db", full);
    backup(control, copy);
    const char *del[] = {"/usr/bin/sqlite3", events_db, ".timeout 10000", "DELETE FROM events",
                         NULL};
    char out[4096];
    if (run_command(del, out, sizeof(out)) != 0)
        fail_msg("pruning the local events: %s", out);

    /* "Update results": from ClickHouse, equal to SQLite over every event */
    json_t *api = NULL;
    assert_int_equal(admin_call(g_node.port, admin, "POST", ANALYZE_PATH, &api),
                     200);
    const char *argv[] = {ABACUS_BIN, "analyze", "--data-dir", full, "--experiment", "exp",
                          "--json", NULL};
    size_t cap = (size_t)8 << 20;
    char *cli_out = malloc(cap);
    if (run_command(argv, cli_out, cap) != 0)
        fail_msg("abacus analyze on the full copy: %s", cli_out);
    json_t *want = json_loads(strchr(cli_out, '{'), JSON_DISABLE_EOF_CHECK, NULL);
    free(cli_out);
    assert_non_null(want);
    const json_t *units = json_object_get(json_object_get(want, "units"), "by_variant");
    assert_true(json_integer_value(json_object_get(units, "control")) > 100);
    expect_close(api, want, "POST .../analyze");
    json_t *local = NULL;
    assert_int_equal(admin_call(g_node.port, admin, "GET", RESULTS_PATH, &local),
                     200);
    expect_close(local, want, "GET .../results");
    const char *first = json_string_value(json_object_get(api, "computed_at"));
    assert_non_null(first);

    /* the schedule (every 2 s) recomputes it from ClickHouse too */
    json_t *scheduled = NULL;
    for (int i = 0; i < 150 && scheduled == NULL; i++) {
        sleep_ms(100);
        json_t *r = NULL;
        assert_int_equal(admin_call(g_node.port, admin, "GET", RESULTS_PATH, &r),
                         200);
        const char *at = json_string_value(json_object_get(r, "computed_at"));
        if (at == NULL)
            fail_msg("GET .../results answered no computed_at: %s",
                     r != NULL ? json_dumps(r, JSON_COMPACT) : "(not JSON)");
        if (strcmp(at, first) != 0)
            scheduled = r;
        else
            json_decref(r);
    }
    if (scheduled == NULL)
        fail_msg("no scheduled refresh within 15 s");
    expect_close(scheduled, want, "the scheduled refresh");
    assert_true(json_is_false(json_object_get(json_object_get(scheduled, "refresh"), "stale")));
    json_t *hist = NULL;
    assert_int_equal(
        admin_call(g_node.port, admin, "GET", "/api/v1/experiments/exp/results/history", &hist),
        200);
    assert_true(json_array_size(json_object_get(hist, "history")) >= 2);
    json_decref(hist);

    /* the nightly report from ClickHouse is the report from every event (numbers to 1e-9) */
    char rep_ch[700], rep_sqlite[700], file_a[800], file_b[800];
    snprintf(rep_ch, sizeof(rep_ch), "%s/report-ch", g_node.dir);
    snprintf(rep_sqlite, sizeof(rep_sqlite), "%s/report-sqlite", g_node.dir);
    report(data, url, rep_ch);
    report(full, NULL, rep_sqlite);
    snprintf(file_a, sizeof(file_a), "%s/report.json", rep_ch);
    snprintf(file_b, sizeof(file_b), "%s/report.json", rep_sqlite);
    json_t *ra = json_load_file(file_a, 0, NULL), *rb = json_load_file(file_b, 0, NULL);
    assert_non_null(ra);
    assert_non_null(rb);
    assert_true(json_array_size(json_object_get(rb, "experiments")) == 1);
    char where[512] = "";
    if (!json_close(ra, rb, where, sizeof(where)))
        fail_msg("the report from ClickHouse differs from the one from SQLite at %s",
                 where[0] != '\0' ? where : "(top)");
    json_decref(ra);
    json_decref(rb);

    /* ClickHouse down: the results stay, stale with the error; the update is refused, not hung */
    ch_stop(&g_ch);
    json_t *err = NULL;
    assert_int_equal(admin_call(g_node.port, admin, "POST", ANALYZE_PATH, &err),
                     503);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(err, "error"), "code")), "unavailable");
    json_decref(err);
    json_t *stale = NULL;
    assert_int_equal(admin_call(g_node.port, admin, "GET", RESULTS_PATH, &stale),
                     200);
    const json_t *rf = json_object_get(stale, "refresh");
    assert_true(json_is_true(json_object_get(rf, "stale")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(rf, "error"), "code")),
                        "unavailable");
    expect_close(stale, want, "the stale results");
    json_decref(stale);
    assert_int_equal(ch_start(&g_ch), 0);
    json_t *back = NULL;
    assert_int_equal(admin_call(g_node.port, admin, "POST", ANALYZE_PATH, &back),
                     200);
    assert_true(json_is_false(json_object_get(json_object_get(back, "refresh"), "stale")));
    expect_close(back, want, "the update after ClickHouse is back");
    json_decref(back);
    double runs = metric(g_node.port, "abacus_analyze_runs_total{trigger=\"schedule\"}");
    double failures = metric(g_node.port, "abacus_analyze_failures_total{trigger=\"request\"}");
    assert_true(runs >= 1);
    assert_true(failures >= 1);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    json_decref(scheduled);
    json_decref(local);
    json_decref(api);
    json_decref(want);
}

/* Applies migrations/clickhouse/cluster/events_distributed.sql to s ({db} t_dist, {cluster}). */
static void apply_cluster_ddl(const struct ch_server *s)
{
    FILE *fp = fopen(CLUSTER_DDL, "r");
    assert_non_null(fp);
    static char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    char stmt[8192];
    size_t len = 0;
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t ll = nl != NULL ? (size_t)(nl - line) : strlen(line);
        if (!(ll >= 2 && line[0] == '-' && line[1] == '-')) {
            for (size_t i = 0; i < ll; i++) {
                if (strncmp(line + i, "{db}", 4) == 0) {
                    len += (size_t)snprintf(stmt + len, sizeof(stmt) - len, "t_dist");
                    i += 3;
                } else if (strncmp(line + i, "{cluster}", 9) == 0) {
                    len += (size_t)snprintf(stmt + len, sizeof(stmt) - len, "abacus_two");
                    i += 8;
                } else if (line[i] == ';') {
                    stmt[len] = '\0';
                    assert_int_equal(ch_query(s, NULL, stmt, NULL), 200);
                    len = 0;
                } else {
                    stmt[len++] = line[i];
                }
            }
            stmt[len++] = ' ';
        }
        line = nl != NULL ? nl + 1 : line + ll;
    }
}

/* Two servers as two shards behind the Distributed table: forwarding and analysis through it. */
/* The two shards: stopped by teardown too, when an assertion ends the test early. */
static struct ch_server g_shard_a, g_shard_b;

static void test_two_shards_distributed(void **state)
{
    (void)state;
    memset(&g_shard_a, 0, sizeof(g_shard_a));
    memset(&g_shard_b, 0, sizeof(g_shard_b));
    assert_int_equal(ch_init(&g_shard_a), 0);
    assert_int_equal(ch_init(&g_shard_b), 0);
    char remote[1024];
    snprintf(remote, sizeof(remote),
             "<remote_servers><abacus_two>"
             "<shard><replica><host>127.0.0.1</host><port>%u</port></replica></shard>"
             "<shard><replica><host>127.0.0.1</host><port>%u</port></replica></shard>"
             "</abacus_two></remote_servers>",
             (unsigned)g_shard_a.tcp_port, (unsigned)g_shard_b.tcp_port);
    snprintf(g_shard_a.extra, sizeof(g_shard_a.extra), "%s", remote);
    snprintf(g_shard_b.extra, sizeof(g_shard_b.extra), "%s", remote);
    assert_int_equal(ch_start(&g_shard_a), 0);
    assert_int_equal(ch_start(&g_shard_b), 0);
    apply_cluster_ddl(&g_shard_a);
    apply_cluster_ddl(&g_shard_b);

    char url[200];
    snprintf(url, sizeof(url), "clickhouse://127.0.0.1:%u/t_dist", (unsigned)g_shard_a.http_port);
    new_collector_dir();
    start_collector(url, "--forward-batch", "300");
    g_rng = 42; /* the same seeded events as test_analysis_clickhouse_equals_sqlite */
    json_t *events = generate_events();
    size_t n = json_array_size(events);
    for (size_t i = 0; i < n; i += 500)
        post_json(g_node.port, events, i, i + 500 < n ? i + 500 : n);
    wait_drained(g_node.port, (double)n);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    json_decref(events);
    /* the Distributed table sends to the shards in the background */
    long long ra = 0, rb = 0;
    for (int waited = 0; waited < 60000 && ra + rb < (long long)n; waited += 200) {
        ra = ch_count(&g_shard_a, "t_dist", "SELECT count() FROM events_local");
        rb = ch_count(&g_shard_b, "t_dist", "SELECT count() FROM events_local");
        sleep_ms(200);
    }
    printf("two shards: %lld + %lld rows for %zu events\n", ra, rb, n);
    assert_int_equal(ra + rb, (long long)n);
    assert_true(ra > 0 && rb > 0);
    /* each unit on one shard: the units of both shards add up to the units of the whole */
    assert_int_equal(ch_count(&g_shard_a, "t_dist", "SELECT uniqExact(unit) FROM events_local") +
                         ch_count(&g_shard_b, "t_dist", "SELECT uniqExact(unit) FROM events_local"),
                     ch_count(&g_shard_a, "t_dist", "SELECT uniqExact(unit) FROM events"));

    char control[600];
    snprintf(control, sizeof(control), "%s/abacus.db", g_node.dir);
    write_control(control);
    json_t *from_sqlite = analyze_cli(NULL);
    json_t *from_ch = analyze_cli(url);
    char path[512] = "";
    if (!json_close(from_ch, from_sqlite, path, sizeof(path)))
        fail_msg("results through the Distributed table differ at %s",
                 path[0] != '\0' ? path : "(top)");
    /* per shard: both shards named, each aggregated where its units are */
    char shards[300];
    snprintf(shards, sizeof(shards), "clickhouse://127.0.0.1:%u,127.0.0.1:%u/t_dist",
             (unsigned)g_shard_a.http_port, (unsigned)g_shard_b.http_port);
    json_t *per_shard = analyze_cli(shards);
    path[0] = '\0';
    if (!json_close(per_shard, from_sqlite, path, sizeof(path)))
        fail_msg("per-shard results differ at %s", path[0] != '\0' ? path : "(top)");
    /* what crossed the network per shard: each shard answered the analysis' one query with sums
     * per (variant, multi, day of the first exposure), each holding its metrics' daily changes,
     * never with a row per unit or per event (query_log) */
    for (int k = 0; k < 2; k++) {
        const struct ch_server *sh = k == 0 ? &g_shard_a : &g_shard_b;
        long long units = ch_count(sh, "t_dist", "SELECT uniqExact(unit) FROM events_local");
        long long most = -1, queries = 0;
        const char *where = "FROM system.query_log WHERE type = 2 AND is_initial_query = 1 AND "
                            "query LIKE '%FROM events_local%' AND query LIKE 'SELECT v,%'";
        char cq[512], mq[512];
        snprintf(cq, sizeof(cq), "SELECT count() %s", where);
        snprintf(mq, sizeof(mq), "SELECT max(result_rows) %s", where);
        for (int waited = 0; waited < 20000 && queries < 1; waited += 250) {
            sleep_ms(250);
            queries = ch_count(sh, NULL, cq);
            most = ch_count(sh, NULL, mq);
        }
        printf("shard %c: %lld units; %lld queries of the analysis answered at most %lld rows\n",
               'A' + k, units, queries, most);
        assert_int_equal(queries, 1); /* the units and every metric at once */
        /* 2 variants x (one variant or two) x the 6 days of the phase up to THROUGH */
        assert_true(most > 0 && most <= 2 * 2 * 6);
        assert_true(most < units / 2);
    }
    json_decref(per_shard);
    json_decref(from_sqlite);
    json_decref(from_ch);
    ch_cleanup(&g_shard_a);
    ch_cleanup(&g_shard_b);
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
    ch_cleanup(&g_shard_a);
    ch_cleanup(&g_shard_b);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_idempotent),
        cmocka_unit_test(test_forward_in_order_survives_restart),
        cmocka_unit_test(test_down_quota_then_drain),
        cmocka_unit_test(test_retention_prunes_forwarded),
        cmocka_unit_test(test_lost_answer_resent_counted_once),
        cmocka_unit_test(test_sigkill_mid_forward),
        cmocka_unit_test(test_analysis_clickhouse_equals_sqlite),
        cmocka_unit_test(test_up_results_from_clickhouse),
        cmocka_unit_test(test_two_shards_distributed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
