/*
 * Integration tests of `abacus collect` (and the collector mounted by `abacus up`): the real
 * binary on 127.0.0.1 with a snapshot holding an ingest key and an experiment, and a temp events
 * database read back with SQLite. Retries are duplicates, conflicting duplicates keep the first,
 * each bad input gets its documented status and code with the server still serving, a full disk
 * (max_page_count lowered through the test-only file) answers 503, loses nothing acknowledged
 * and resumes without a restart.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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

#define KEY "ingest-key-1"

static struct abacus_proc g_node;
static char g_snap[512], g_db[700];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The test snapshot at version, with ingest key KEY and, when extra_key, that key too. */
static void write_snapshot_version(const char *path, int64_t version, const char *extra_key)
{
    struct ab_snapshot s = {0};
    s.version = version;
    s.created_at = now_ms();
    s.nexperiments = 1;
    s.experiments = calloc(1, sizeof(*s.experiments));
    struct ab_snapshot_experiment *e = &s.experiments[0];
    e->key = strdup("checkout");
    e->running = 1;
    e->hash_attribute = strdup("id");
    e->hash_version = 2;
    e->seed = strdup("checkout");
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
    s.ningest_keys = extra_key != NULL ? 2 : 1;
    s.ingest_key_hashes = calloc(2, sizeof(char *));
    for (size_t i = 0; i < s.ningest_keys; i++) {
        s.ingest_key_hashes[i] = malloc(65);
        ab_snapshot_key_hash(i == 0 ? KEY : extra_key, s.ingest_key_hashes[i]);
    }
    if (s.ningest_keys == 2 && strcmp(s.ingest_key_hashes[0], s.ingest_key_hashes[1]) > 0) {
        char *t = s.ingest_key_hashes[0]; /* the file keeps them sorted */
        s.ingest_key_hashes[0] = s.ingest_key_hashes[1];
        s.ingest_key_hashes[1] = t;
    }
    struct ab_errinfo ei;
    if (ab_snapshot_write(&s, path, &ei) != AB_OK)
        fail_msg("cannot write snapshot: %s", ei.message);
    struct ab_snapshot *heap = malloc(sizeof(*heap));
    *heap = s;
    ab_snapshot_free(heap);
}

static void write_snapshot(const char *path)
{
    write_snapshot_version(path, 1, NULL);
}

static void start_collector_with(const char *flag, const char *value)
{
    const char *args[] = {"collect", "--db",     g_db, "--snapshot-file", g_snap,
                          "--threads", "2",      flag, value,             NULL};
    assert_int_equal(abacus_spawn(&g_node, args), 0);
}

static void start_collector(void)
{
    start_collector_with(NULL, NULL);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_node, 0, sizeof(g_node));
    if (make_temp_dir(g_node.dir) != 0)
        return -1;
    snprintf(g_snap, sizeof(g_snap), "%s/snapshot.db", g_node.dir);
    snprintf(g_db, sizeof(g_db), "%s/events.db", g_node.dir);
    write_snapshot(g_snap);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_node.pid > 0)
        assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    abacus_cleanup(&g_node);
    return 0;
}

/* POSTs body to path with the ingest key (auth: a full Authorization header value or NULL). */
static int post(const char *path, const char *auth, const char *ctype, const char *body,
                size_t len, json_t **doc, char *retry_after)
{
    size_t cap = len + 1024;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n",
                     path, len);
    if (ctype != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (auth != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Authorization: %s\r\n", auth);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    memcpy(req + n, body, len);
    struct http_response r;
    int rc = http_raw(g_node.port, req, (size_t)n + len, &r);
    free(req);
    assert_int_equal(rc, 0);
    if (doc != NULL) {
        *doc = json_loads(r.body, 0, NULL);
        if (*doc == NULL)
            fail_msg("not JSON (status %d): %s", r.status, r.body);
    }
    if (retry_after != NULL && http_header(&r, "retry-after", retry_after, 16) == NULL)
        retry_after[0] = '\0';
    int status = r.status;
    http_response_free(&r);
    return status;
}

static int post_events(const char *body, json_t **doc)
{
    return post("/v1/events", "Bearer " KEY, "application/json", body, strlen(body), doc, NULL);
}

static long long query_int(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static long long json_int(const json_t *doc, const char *key)
{
    const json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v))
        fail_msg("no integer %s", key);
    return (long long)json_integer_value(v);
}

/* A batch of n exposure events with ids PREFIX-0 .. PREFIX-(n-1), as JSON text (heap). */
static char *exposures(const char *prefix, int n, int64_t ts)
{
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", id, "type",
                                              "exposure", "ts", (json_int_t)ts, "unit", "u1",
                                              "experiment", "checkout", "variant",
                                              i % 2 ? "treatment" : "control"));
    }
    json_t *doc = json_pack("{s:o}", "events", list);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static double metric_value(const char *name)
{
    struct http_response r;
    assert_int_equal(http_do(g_node.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    double v = -1;
    const char *line = r.body;
    size_t n = strlen(name);
    while (line != NULL && *line != '\0') {
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    http_response_free(&r);
    return v;
}

/* ---------------------------------------------------------------- tests */

static void test_retry_adds_nothing(void **state)
{
    (void)state;
    start_collector();
    char *body = exposures("retry", 50, now_ms());
    json_t *doc;
    assert_int_equal(post_events(body, &doc), 200);
    assert_int_equal(json_int(doc, "accepted"), 50);
    assert_int_equal(json_int(doc, "duplicates"), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "rejected")), 0);
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM events"), 50);
    /* the acknowledged batch again: every event a duplicate, no row added */
    assert_int_equal(post_events(body, &doc), 200);
    assert_int_equal(json_int(doc, "accepted"), 0);
    assert_int_equal(json_int(doc, "duplicates"), 50);
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM events"), 50);
    assert_int_equal(query_int("SELECT count(DISTINCT id) FROM events"), 50);
    free(body);
    /* duplicates inside one request count too */
    const char *twice = "{\"events\":[{\"id\":\"same\",\"type\":\"metric\",\"ts\":1000,"
                        "\"unit\":\"u\",\"metric\":\"m\"},{\"id\":\"same\",\"type\":\"metric\","
                        "\"ts\":1000,\"unit\":\"u\",\"metric\":\"m\"}]}";
    assert_int_equal(post_events(twice, &doc), 200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
    assert_true(metric_value("abacus_collect_events_duplicate_total") == 51);
}

static void test_conflicting_duplicate_keeps_first(void **state)
{
    (void)state;
    start_collector();
    json_t *doc;
    assert_int_equal(post_events("{\"events\":[{\"id\":\"c1\",\"type\":\"metric\",\"ts\":5000,"
                                 "\"unit\":\"u\",\"metric\":\"revenue\",\"value\":10}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    json_decref(doc);
    assert_int_equal(post_events("{\"events\":[{\"id\":\"c1\",\"type\":\"metric\",\"ts\":5000,"
                                 "\"unit\":\"u\",\"metric\":\"revenue\",\"value\":99}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 0);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id = 'c1'"), 1);
    assert_int_equal(query_int("SELECT value FROM events WHERE id = 'c1'"), 10);
    assert_true(metric_value("abacus_collect_events_conflicting_duplicate_total") == 1);
}

/* The same id re-sent with another timestamp is the same event: found through the recent ids,
 * within one batch, across batches, and after a restart (the map is rebuilt from the table). */
static void test_duplicate_with_other_timestamp(void **state)
{
    (void)state;
    start_collector();
    json_t *doc;
    assert_int_equal(post_events("{\"events\":[{\"id\":\"t1\",\"type\":\"metric\",\"ts\":5000,"
                                 "\"unit\":\"u\",\"metric\":\"m\"},{\"id\":\"t1\",\"type\":"
                                 "\"metric\",\"ts\":5001,\"unit\":\"u\",\"metric\":\"m\"}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
    assert_int_equal(post_events("{\"events\":[{\"id\":\"t1\",\"type\":\"metric\",\"ts\":9000,"
                                 "\"unit\":\"u\",\"metric\":\"m\"}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 0);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
    assert_true(metric_value("abacus_collect_events_conflicting_duplicate_total") == 2);
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 20000), 0);
    start_collector();
    assert_int_equal(post_events("{\"events\":[{\"id\":\"t1\",\"type\":\"metric\",\"ts\":7000,"
                                 "\"unit\":\"u\",\"metric\":\"m\"},{\"id\":\"t2\",\"type\":"
                                 "\"metric\",\"ts\":7000,\"unit\":\"u\",\"metric\":\"m\"}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id = 't1'"), 1);
    assert_int_equal(query_int("SELECT client_ts FROM events WHERE id = 't1'"), 5000);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id = 't2'"), 1);
}

struct bad_case {
    const char *name;
    const char *ctype;
    const char *auth;
    const char *body; /* NULL: built by the test */
    int status;
    const char *code; /* error code, or for 200 the one rejection's code */
    const char *field;
};

static char *big_body(size_t size)
{
    char *s = malloc(size + 1);
    memset(s, ' ', size);
    memcpy(s, "{\"events\":[]", 12);
    s[size - 1] = '}';
    s[size] = '\0';
    return s;
}

static char *many_events(int n)
{
    size_t cap = (size_t)n * 80 + 32;
    char *s = malloc(cap);
    size_t len = (size_t)snprintf(s, cap, "{\"events\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"id\":\"m%d\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\","
                                "\"metric\":\"m\"}",
                                i ? "," : "", i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void test_bad_inputs(void **state)
{
    (void)state;
    start_collector();
    char future[256], skewed[256], huge_event[40000];
    int64_t now = now_ms();
    snprintf(future, sizeof(future),
             "{\"events\":[{\"id\":\"f1\",\"type\":\"metric\",\"ts\":%lld,\"unit\":\"u\","
             "\"metric\":\"m\"}]}",
             (long long)(now + 3600000));
    /* the client's clock is an hour ahead: sent_at corrects it, the event is accepted */
    snprintf(skewed, sizeof(skewed),
             "{\"events\":[{\"id\":\"s1\",\"type\":\"metric\",\"ts\":%lld,\"sent_at\":%lld,"
             "\"unit\":\"u\",\"metric\":\"m\"}]}",
             (long long)(now + 3600000), (long long)(now + 3600000));
    int off = snprintf(huge_event, sizeof(huge_event),
                       "{\"events\":[{\"id\":\"h1\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\","
                       "\"metric\":\"m\",\"attributes\":{\"pad\":\"");
    memset(huge_event + off, 'x', 34000);
    snprintf(huge_event + off + 34000, sizeof(huge_event) - (size_t)off - 34000, "\"}}]}");
    char *over_limit = big_body(512 * 1024 + 1);
    char *too_many = many_events(501);
    char deep[512];
    size_t dlen = (size_t)snprintf(deep, sizeof(deep),
                                   "{\"events\":[{\"id\":\"d\",\"type\":\"metric\",\"ts\":1,"
                                   "\"unit\":\"u\",\"metric\":\"m\",\"attributes\":");
    for (int i = 0; i < 20; i++)
        dlen += (size_t)snprintf(deep + dlen, sizeof(deep) - dlen, "{\"a\":");
    dlen += (size_t)snprintf(deep + dlen, sizeof(deep) - dlen, "1");
    for (int i = 0; i < 20; i++)
        dlen += (size_t)snprintf(deep + dlen, sizeof(deep) - dlen, "}");
    snprintf(deep + dlen, sizeof(deep) - dlen, "}]}");

    const struct bad_case cases[] = {
        {"malformed JSON", "application/json", "Bearer " KEY, "{\"events\":[{\"id\":", 400,
         "invalid_json", "body"},
        {"not an object", "application/json", "Bearer " KEY, "[1,2]", 400, "invalid_field",
         "events"},
        {"wrong content type", "text/plain", "Bearer " KEY, "{\"events\":[]}", 415,
         "unsupported_media_type", "content-type"},
        {"no content type", NULL, "Bearer " KEY, "{\"events\":[]}", 415,
         "unsupported_media_type", "content-type"},
        {"501 events", "application/json", "Bearer " KEY, too_many, 400, "invalid_field",
         "events"},
        {"too deep", "application/json", "Bearer " KEY, deep, 400, "invalid_json", "body"},
        {"no key", "application/json", NULL, "{\"events\":[]}", 401, "unauthorized",
         "authorization"},
        {"wrong key", "application/json", "Bearer nope", "{\"events\":[]}", 401, "unauthorized",
         "authorization"},
        {"missing field", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"metric\":\"m\"}]}", 200,
         "missing_field", "events[0].unit"},
        {"wrong type", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":7,\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}]}",
         200, "wrong_type", "events[0].id"},
        {"bad value", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"v\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":"
         "\"m\",\"value\":\"x\"}]}",
         200, "wrong_type", "events[0].value"},
        {"bad timestamp", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"t\",\"type\":\"metric\",\"ts\":\"yesterday\",\"unit\":\"u\","
         "\"metric\":\"m\"}]}",
         200, "invalid_value", "events[0].ts"},
        {"unknown experiment", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"x\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
         "\"experiment\":\"nope\",\"variant\":\"control\"}]}",
         200, "unknown_experiment", "events[0].experiment"},
        {"unknown variant", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"y\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
         "\"experiment\":\"checkout\",\"variant\":\"blue\"}]}",
         200, "unknown_variant", "events[0].variant"},
        {"invalid UTF-8", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"z\",\"type\":\"metric\",\"ts\":1,\"unit\":\"\xc3\x28\","
         "\"metric\":\"m\"}]}",
         200, "invalid_utf8", "events[0]"},
        {"NUL in a string", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"n\",\"type\":\"metric\",\"ts\":1,\"unit\":\"a\\u0000b\","
         "\"metric\":\"m\"}]}",
         200, "nul_in_string", "events[0].unit"},
        {"event over 32 KiB", "application/json", "Bearer " KEY, huge_event, 200,
         "event_too_large", "events[0]"},
        {"ts in the future", "application/json", "Bearer " KEY, future, 200, "ts_in_future",
         "events[0].ts"},
        {"unknown field", "application/json", "Bearer " KEY,
         "{\"events\":[{\"id\":\"u\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":"
         "\"m\",\"colour\":1}]}",
         200, "unknown_field", "events[0].colour"},
    };
    long long rows = 0, rejected = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad_case *c = &cases[i];
        json_t *doc = NULL;
        int status = post("/v1/events", c->auth, c->ctype, c->body, strlen(c->body), &doc, NULL);
        if (status != c->status)
            fail_msg("%s: status %d, want %d", c->name, status, c->status);
        const json_t *err = json_object_get(doc, "error");
        const char *code, *field;
        if (c->status == 200) {
            const json_t *r = json_array_get(json_object_get(doc, "rejected"), 0);
            assert_int_equal(json_array_size(json_object_get(doc, "rejected")), 1);
            assert_int_equal(json_int(r, "index"), 0);
            code = json_string_value(json_object_get(r, "code"));
            field = json_string_value(json_object_get(r, "field"));
            assert_non_null(json_string_value(json_object_get(r, "message")));
            rejected++;
        } else {
            code = json_string_value(json_object_get(err, "code"));
            field = json_string_value(json_object_get(err, "field"));
        }
        if (code == NULL || strcmp(code, c->code) != 0 || field == NULL ||
            strcmp(field, c->field) != 0)
            fail_msg("%s: code %s field %s, want %s %s", c->name, code ? code : "(none)",
                     field ? field : "(none)", c->code, c->field);
        if (strcmp(c->name, "malformed JSON") == 0)
            assert_non_null(strstr(json_string_value(json_object_get(err, "message")), "byte"));
        json_decref(doc);
        /* nothing of a refused request is stored; a rejected event is, with its reason */
        assert_int_equal(query_int("SELECT count(*) FROM events"), rows);
        assert_int_equal(query_int("SELECT count(*) FROM rejected_events"), rejected);
        /* and the server keeps serving */
        assert_int_equal(post_events(skewed, &doc), 200);
        assert_int_equal(json_int(doc, "accepted") + json_int(doc, "duplicates"), 1);
        rows += json_int(doc, "accepted");
        json_decref(doc);
    }
    assert_int_equal(rows, 1);
    /* over 512 KiB: refused on the declared length, before the body is read (sending it whole
     * would race the server's close against the client's read of the answer) */
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " KEY
                      "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      strlen(over_limit));
    struct http_response r;
    assert_int_equal(http_raw(g_node.port, head, (size_t)hn, &r), 0);
    assert_int_equal(r.status, 413);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    const json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), "payload_too_large");
    assert_string_equal(json_string_value(json_object_get(err, "field")), "body");
    json_decref(doc);
    http_response_free(&r);
    assert_int_equal(query_int("SELECT count(*) FROM events"), rows);
    assert_int_equal(query_int("SELECT count(*) FROM rejected_events WHERE code = 'invalid_utf8' "
                               "AND field = 'events[0]' AND length(raw) > 0"),
                     1);
    /* the skew-corrected ts is about now, the client's ts an hour ahead */
    assert_true(query_int("SELECT client_ts - ts FROM events WHERE id = 's1'") > 3500000);
    free(over_limit);
    free(too_many);
}

static void test_ndjson_and_write_key(void **state)
{
    (void)state;
    start_collector();
    const char *body = "{\"id\":\"nd1\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}\n"
                       "\n"
                       "{\"id\":\"nd2\",\"type\":\"exposure\",\"ts\":\"2026-01-02T03:04:05.678Z\","
                       "\"unit\":\"u\",\"experiment\":\"checkout\",\"variant\":\"treatment\"}\r\n";
    json_t *doc;
    assert_int_equal(post("/v1/events?write_key=" KEY, NULL, "application/x-ndjson", body,
                          strlen(body), &doc, NULL),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 2);
    json_decref(doc);
    assert_int_equal(query_int("SELECT ts FROM events WHERE id = 'nd2'"), 1767323045678LL);
    const char *broken = "{\"id\":\"nd3\"}\n{broken\n";
    assert_int_equal(post("/v1/events?write_key=" KEY, NULL, "application/x-ndjson", broken,
                          strlen(broken), &doc, NULL),
                     400);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(doc, "error"),
                                                             "message")),
                           "line 2"));
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM rejected_events"), 0);
}

static void test_segment_batch(void **state)
{
    (void)state;
    start_collector();
    const char *body =
        "{\"batch\":[{\"type\":\"track\",\"messageId\":\"sg1\",\"userId\":\"u9\",\"event\":"
        "\"Experiment Viewed\",\"properties\":{\"experiment_id\":\"checkout\",\"variation_id\":"
        "\"treatment\"},\"timestamp\":\"2026-11-24T10:00:00.000Z\"},"
        "{\"type\":\"track\",\"messageId\":\"sg2\",\"anonymousId\":\"a1\",\"event\":\"Order\","
        "\"properties\":{\"revenue\":42.5},\"timestamp\":\"2026-11-24T10:00:01.000Z\"},"
        "{\"type\":\"identify\",\"messageId\":\"sg3\",\"userId\":\"u9\"}],"
        "\"sentAt\":\"2026-11-24T10:00:02.000Z\"}";
    json_t *doc;
    /* what Segment's libraries send: Basic auth with the write key as the user */
    assert_int_equal(post("/v1/batch", "Basic aW5nZXN0LWtleS0xOg==", "application/json", body,
                          strlen(body), &doc, NULL),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 2);
    const json_t *r = json_array_get(json_object_get(doc, "rejected"), 0);
    assert_string_equal(json_string_value(json_object_get(r, "code")), "unsupported_type");
    assert_string_equal(json_string_value(json_object_get(r, "field")), "batch[2].type");
    json_decref(doc);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id = 'sg1' AND type = "
                               "'exposure' AND variant = 'treatment' AND unit = 'u9'"),
                     1);
    assert_int_equal(query_int("SELECT value * 10 FROM events WHERE id = 'sg2' AND metric = "
                               "'Order' AND unit = 'a1'"),
                     425);
}

/* The disk is full (the flag file of tests/tools/disk_full.c exists) or has room again. */
static void set_disk_full(const char *flag, int on)
{
    if (on) {
        FILE *fp = fopen(flag, "w");
        assert_non_null(fp);
        assert_int_equal(fclose(fp), 0);
    } else {
        assert_int_equal(unlink(flag), 0);
    }
}

static void test_disk_full(void **state)
{
    (void)state;
    char flag[600], asan[1024];
    snprintf(flag, sizeof(flag), "%s/disk-full", g_node.dir);
    const char *asan_was = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", asan_was ? asan_was : "",
             asan_was ? ":" : "");
    char *asan_saved = asan_was ? strdup(asan_was) : NULL;
    setenv("LD_PRELOAD", DISK_FULL_LIB, 1);
    setenv("ABACUS_TEST_DISK_FULL_FLAG", flag, 1);
    setenv("ABACUS_TEST_DISK_FULL_DIR", g_node.dir, 1);
    setenv("ASAN_OPTIONS", asan, 1);
    start_collector();
    unsetenv("LD_PRELOAD");
    unsetenv("ABACUS_TEST_DISK_FULL_FLAG");
    unsetenv("ABACUS_TEST_DISK_FULL_DIR");
    if (asan_saved != NULL)
        setenv("ASAN_OPTIONS", asan_saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(asan_saved);
    int64_t ts = now_ms();
    int acked = 0;
    json_t *doc;
    for (int b = 0; b < 5; b++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "before%d", b);
        char *body = exposures(prefix, 200, ts + b);
        assert_int_equal(post_events(body, &doc), 200);
        acked += (int)json_int(doc, "accepted");
        json_decref(doc);
        free(body);
    }
    assert_int_equal(acked, 1000);
    /* the disk is full: every write to the events database fails with ENOSPC */
    set_disk_full(flag, 1);
    int refused = 0;
    for (int b = 0; b < 20; b++) {
        char prefix[32], retry[16];
        snprintf(prefix, sizeof(prefix), "full%d", b);
        char *body = exposures(prefix, 200, ts + 100 + b);
        int status = post("/v1/events", "Bearer " KEY, "application/json", body, strlen(body),
                          &doc, retry);
        free(body);
        if (status == 200) {
            acked += (int)json_int(doc, "accepted");
        } else {
            assert_int_equal(status, 503);
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                "unavailable");
            assert_string_equal(retry, "1");
            refused++;
        }
        json_decref(doc);
    }
    assert_true(refused > 0);
    assert_true(metric_value("abacus_collect_storage_errors_total") >= refused);
    /* nothing acknowledged is lost, nothing refused is half there */
    assert_int_equal(query_int("SELECT count(*) FROM events"), acked);
    /* space is freed: the same collector, not restarted, stores again */
    set_disk_full(flag, 0);
    char *body = exposures("after", 200, ts + 500);
    assert_int_equal(post_events(body, &doc), 200);
    assert_int_equal(json_int(doc, "accepted"), 200);
    json_decref(doc);
    free(body);
    assert_int_equal(query_int("SELECT count(*) FROM events"), acked + 200);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id LIKE 'before%'"), 1000);
}

static void test_up_mounts_collector(void **state)
{
    (void)state;
    char data[600];
    const char *extra[] = {"--snapshot-file", g_snap, NULL};
    struct abacus_proc up;
    assert_int_equal(abacus_start(&up, extra), 0);
    uint16_t port = g_node.port;
    g_node.port = up.port;
    json_t *doc;
    assert_int_equal(post_events("{\"events\":[{\"id\":\"up1\",\"type\":\"metric\",\"ts\":1,"
                                 "\"unit\":\"u\",\"metric\":\"m\"}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    json_decref(doc);
    g_node.port = port;
    assert_int_equal(abacus_stop(&up, SIGTERM, 20000), 0);
    snprintf(data, sizeof(data), "%s/data/events.db", up.dir);
    snprintf(g_db, sizeof(g_db), "%s", data);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id = 'up1'"), 1);
    abacus_cleanup(&up);
}

static void test_snapshot_reload_adds_key(void **state)
{
    (void)state;
    start_collector_with("--poll-interval", "1");
    const char *body = "{\"events\":[{\"id\":\"k1\",\"type\":\"metric\",\"ts\":1,"
                       "\"unit\":\"u\",\"metric\":\"m\"}]}";
    json_t *doc;
    assert_int_equal(post("/v1/events", "Bearer new-key", "application/json", body, strlen(body),
                          &doc, NULL),
                     401);
    json_decref(doc);
    /* a newer snapshot with a second ingest key replaces the file: the collector picks it up */
    write_snapshot_version(g_snap, 2, "new-key");
    int status = 0;
    for (int i = 0; i < 300 && metric_value("abacus_collect_snapshot_version") != 2; i++) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(metric_value("abacus_collect_snapshot_version") == 2);
    status = post("/v1/events", "Bearer new-key", "application/json", body, strlen(body), &doc,
                  NULL);
    assert_int_equal(status, 200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    json_decref(doc);
    /* the first key still works */
    assert_int_equal(post_events(body, &doc), 200);
    assert_int_equal(json_int(doc, "duplicates"), 1);
    json_decref(doc);
}

/* A request sent from another thread (no cmocka asserts there): its status and Retry-After. */
struct async_post {
    pthread_t tid;
    char *raw;
    size_t len;
    int status;
    char retry_after[16];
};

static void *async_post_main(void *arg)
{
    struct async_post *a = arg;
    struct http_response r;
    a->status = http_raw(g_node.port, a->raw, a->len, &r) == 0 ? r.status : -1;
    if (a->status > 0 && http_header(&r, "retry-after", a->retry_after, 16) == NULL)
        a->retry_after[0] = '\0';
    if (a->status > 0)
        http_response_free(&r);
    return NULL;
}

static void async_post(struct async_post *a, const char *prefix, int n)
{
    char *body = exposures(prefix, n, 123456);
    size_t blen = strlen(body);
    a->raw = malloc(blen + 512);
    a->len = (size_t)snprintf(a->raw, 512,
                              "POST /v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                              "Authorization: Bearer " KEY "\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              blen);
    memcpy(a->raw + a->len, body, blen);
    a->len += blen;
    free(body);
    a->status = 0;
    assert_int_equal(pthread_create(&a->tid, NULL, async_post_main, a), 0);
}

static void async_join(struct async_post *a)
{
    pthread_join(a->tid, NULL);
    free(a->raw);
}

/* Polls the metric until it has the value (at most 10 s), and asserts it has. */
static void wait_metric(const char *name, double value)
{
    for (int i = 0; i < 1000 && metric_value(name) != value; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(metric_value(name) == value);
}

static void test_queue_full_and_busy(void **state)
{
    (void)state;
    start_collector_with("--queue-events", "100");
    /* another process holds the write lock: the writer's BEGIN IMMEDIATE waits (5 s), then
     * gives up; meanwhile requests queue up to the bound */
    sqlite3 *lock = NULL;
    assert_int_equal(sqlite3_open_v2(g_db, &lock, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    /* A is taken by the writer, whose BEGIN IMMEDIATE waits for the lock; only then B is
     * sent, so B waits in the queue (sent together, B could be taken first and A would wait
     * for two busy timeouts) */
    struct async_post a, b;
    async_post(&a, "qa", 60);
    wait_metric("abacus_collect_commit_events", 60);
    async_post(&b, "qb", 60);
    wait_metric("abacus_collect_queue_events", 60);
    /* the queue holds B: C does not fit */
    json_t *doc;
    char retry[16];
    char *body = exposures("qc", 60, 123456);
    assert_int_equal(
        post("/v1/events", "Bearer " KEY, "application/json", body, strlen(body), &doc, retry),
        503);
    free(body);
    assert_string_equal(retry, "1");
    json_decref(doc);
    assert_true(metric_value("abacus_collect_unavailable_total{reason=\"queue_full\"}") == 1);
    /* A's transaction could not begin: 503, nothing of it stored */
    async_join(&a);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.retry_after, "1");
    assert_int_equal(sqlite3_exec(lock, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    async_join(&b);
    assert_true(b.status == 200 || b.status == 503);
    assert_true(metric_value("abacus_collect_unavailable_total{reason=\"storage\"}") >= 1);
    /* the lock is gone: the collector stores again, without a restart */
    body = exposures("qd", 10, 123456);
    assert_int_equal(post_events(body, &doc), 200);
    assert_int_equal(json_int(doc, "accepted"), 10);
    json_decref(doc);
    free(body);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id LIKE 'qa-%'"), 0);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id LIKE 'qb-%'"),
                     b.status == 200 ? 60 : 0);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id LIKE 'qc-%'"), 0);
    assert_int_equal(query_int("SELECT count(*) FROM events WHERE id LIKE 'qd-%'"), 10);
}

static void test_migrate_events_schema(void **state)
{
    (void)state;
    char out[4096];
    const char *argv[] = {ABACUS_BIN, "migrate", "--db", g_db, "--schema", "events", NULL};
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "schema version 0 -> 2"));
    assert_int_equal(query_int("PRAGMA user_version"), 2);
    assert_int_equal(query_int("SELECT count(*) FROM sqlite_master WHERE name IN ('events', "
                               "'rejected_events', 'events_dedup', 'forward_state')"),
                     4);
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "up to date"));
    const char *bad[] = {ABACUS_BIN, "migrate", "--db", g_db, "--schema", "nope", NULL};
    assert_int_equal(run_command(bad, out, sizeof(out)), 2);
    /* the collector opens the migrated database as is */
    start_collector();
    json_t *doc;
    assert_int_equal(post_events("{\"events\":[{\"id\":\"m1\",\"type\":\"metric\",\"ts\":1,"
                                 "\"unit\":\"u\",\"metric\":\"m\"}]}",
                                 &doc),
                     200);
    assert_int_equal(json_int(doc, "accepted"), 1);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retry_adds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicting_duplicate_keeps_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_with_other_timestamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_and_write_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_up_mounts_collector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_events_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_and_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_reload_adds_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
