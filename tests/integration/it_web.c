/*
 * Integration tests of the control plane (`abacus web`, and `abacus up` mounting it): the real
 * binary on 127.0.0.1 with a temp data dir. Admin keys, field-level validation (layer overlap,
 * weights, unknown metric, duplicate key, invalid condition), SQL injection strings kept
 * literally, optimistic concurrency under two simultaneous writers, phases, the audit log, and
 * publishing (versions, manifest, ETags, the file's SHA-256, pruning).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "abacus/snapshot.h"
#include "harness.h"

static struct abacus_proc g_cp;
static char g_key[128];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* One request with the admin key (unless key is NULL) and optional extra header lines. */
static int api(const char *method, const char *path, const char *key, const char *body,
               const char *extra, struct http_response *r)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = blen + 1024 + strlen(path) + (extra != NULL ? strlen(extra) : 0);
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
                     method, path);
    if (key != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", key);
    if (extra != NULL)
        n += snprintf(req + n, cap - (size_t)n, "%s", extra);
    if (body != NULL)
        n += snprintf(req + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body != NULL) {
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    int rc = http_raw(g_cp.port, req, (size_t)n, r);
    free(req);
    return rc;
}

/* Sends a request and returns the parsed body; *status gets the status. */
static json_t *call(const char *method, const char *path, const char *body, int *status)
{
    struct http_response r;
    assert_int_equal(api(method, path, g_key, body, NULL, &r), 0);
    *status = r.status;
    json_t *doc = r.body_len > 0 ? json_loads(r.body, 0, NULL) : json_object();
    if (doc == NULL)
        fail_msg("%s %s: not JSON: %s", method, path, r.body);
    http_response_free(&r);
    return doc;
}

static json_t *call_ok(const char *method, const char *path, const char *body, int want)
{
    int st;
    json_t *doc = call(method, path, body, &st);
    if (st != want) {
        char *t = json_dumps(doc, 0);
        fail_msg("%s %s: status %d, want %d: %s", method, path, st, want, t);
    }
    return doc;
}

/* Expects a 4xx with the given code and field. */
static void expect_error(const char *method, const char *path, const char *body, int status,
                         const char *code, const char *field)
{
    int st;
    json_t *doc = call(method, path, body, &st);
    const json_t *e = json_object_get(doc, "error");
    const char *got_code = json_string_value(json_object_get(e, "code"));
    const char *got_field = json_string_value(json_object_get(e, "field"));
    if (st != status || got_code == NULL || strcmp(got_code, code) != 0 ||
        (field != NULL && (got_field == NULL || strcmp(got_field, field) != 0))) {
        char *t = json_dumps(doc, 0);
        fail_msg("%s %s %s: got %d %s, want %d %s field %s", method, path, body, st,
                 t != NULL ? t : "", status, code, field != NULL ? field : "-");
    }
    json_decref(doc);
}

static void read_admin_key(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/data/admin.key", g_cp.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(g_key, sizeof(g_key), fp));
    fclose(fp);
    g_key[strcspn(g_key, "\n")] = '\0';
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void start_web(const char *cmd)
{
    memset(&g_cp, 0, sizeof(g_cp));
    assert_int_equal(make_temp_dir(g_cp.dir), 0);
    char data[512];
    snprintf(data, sizeof(data), "%s/data", g_cp.dir);
    const char *args[] = {cmd, "--data-dir", data, "--threads", "2", "--publish-debounce-ms",
                          "50", "--keep-snapshots", "3", "--poll-interval", "1", NULL};
    if (strcmp(cmd, "web") == 0)
        args[9] = NULL; /* --poll-interval is an assign flag */
    assert_int_equal(abacus_spawn(&g_cp, args), 0);
    read_admin_key();
}

/* Stops the server with SIGTERM: it must exit 0 (under ASan: no leak, no error). */
static int teardown(void **state)
{
    (void)state;
    int rc = g_cp.pid > 0 ? abacus_stop(&g_cp, SIGTERM, 10000) : 0;
    if (rc != 0) {
        char log[16384];
        abacus_log(&g_cp, log, sizeof(log));
        fprintf(stderr, "the server exited with %d; its log:\n%s\n", rc, log);
    }
    abacus_cleanup(&g_cp);
    return rc == 0 ? 0 : -1;
}

static const char *const METRIC =
    "{\"key\":\"purchase\",\"name\":\"Purchase\",\"type\":\"binomial\",\"event\":\"purchase\"}";

static char *experiment_body(const char *key, const char *layer, double a, double b)
{
    json_t *e = json_pack("{s:s, s:s, s:[{s:s, s:f, s:{}}, {s:s, s:f, s:{s:s}}], s:[{s:s}]}",
                          "key", key, "name", "Checkout button", "variants", "key", "control",
                          "weight", 0.5, "payload", "key", "treatment", "weight", 0.5, "payload",
                          "color", "green", "metrics", "key", "purchase");
    if (layer != NULL)
        json_object_set_new(e, "layer", json_pack("{s:s, s:[f,f]}", "key", layer, "range", a, b));
    char *s = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return s;
}

/* ---------------------------------------------------------------- tests */

static void test_auth_and_first_key(void **state)
{
    (void)state;
    start_web("web");
    char log[8192];
    abacus_log(&g_cp, log, sizeof(log));
    assert_non_null(strstr(log, g_key)); /* printed once at the first start */
    struct http_response r;
    assert_int_equal(api("GET", "/api/v1/experiments", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(r.body, "\"field\":\"authorization\""));
    http_response_free(&r);
    assert_int_equal(api("GET", "/api/v1/experiments", "adm_wrong", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 401);
    http_response_free(&r);
    /* the key is stored hashed: the database does not hold it */
    char db[512];
    snprintf(db, sizeof(db), "%s/data/abacus.db", g_cp.dir);
    FILE *fp = fopen(db, "rb");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 22);
    size_t n = fread(buf, 1, (1 << 22) - 1, fp);
    fclose(fp);
    assert_null(memmem(buf, n, g_key, strlen(g_key)));
    free(buf);
    /* a restart keeps the key and prints none */
    assert_int_equal(abacus_stop(&g_cp, SIGTERM, 10000), 0);
    char data[512];
    snprintf(data, sizeof(data), "%s/data", g_cp.dir);
    const char *args[] = {"web", "--data-dir", data, "--threads", "2", NULL};
    assert_int_equal(abacus_spawn(&g_cp, args), 0);
    abacus_log(&g_cp, log, sizeof(log));
    int count = 0;
    for (const char *p = log; (p = strstr(p, "created an admin API key")) != NULL; p++)
        count++;
    assert_int_equal(count, 1);
    json_decref(call_ok("GET", "/api/v1/experiments", NULL, 200));
}

static void test_validation_errors(void **state)
{
    (void)state;
    start_web("web");
    json_decref(call_ok("POST", "/api/v1/metrics", METRIC, 201));
    json_decref(call_ok("POST", "/api/v1/layers", "{\"key\":\"checkout\"}", 201));
    char *a = experiment_body("exp-a", "checkout", 0.0, 0.5);
    json_decref(call_ok("POST", "/api/v1/experiments", a, 201));
    free(a);
    /* layer overlap */
    char *b = experiment_body("exp-b", "checkout", 0.4, 0.8);
    expect_error("POST", "/api/v1/experiments", b, 400, "invalid_field", "layer.range");
    free(b);
    b = experiment_body("exp-b", "checkout", 0.5, 1.0); /* touching is fine: [0, .5) [.5, 1) */
    json_decref(call_ok("POST", "/api/v1/experiments", b, 201));
    free(b);
    b = experiment_body("exp-c", "nowhere", 0.0, 0.1);
    expect_error("POST", "/api/v1/experiments", b, 400, "invalid_field", "layer.key");
    free(b);
    /* weights not summing to 1 */
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"w\",\"variants\":[{\"key\":\"a\",\"weight\":0.5},"
                 "{\"key\":\"b\",\"weight\":0.6}]}",
                 400, "invalid_field", "variants");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"w\",\"variants\":[{\"key\":\"a\",\"weight\":1.5},"
                 "{\"key\":\"b\",\"weight\":-0.5}]}",
                 400, "invalid_field", "variants[0].weight");
    /* unknown metric */
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"m\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                 "\"metrics\":[{\"key\":\"purchase\"},{\"key\":\"nope\"}]}",
                 400, "invalid_field", "metrics[1].key");
    /* duplicate keys: experiment, metric, layer, variant */
    char *dup = experiment_body("exp-a", NULL, 0, 0);
    expect_error("POST", "/api/v1/experiments", dup, 400, "invalid_field", "key");
    free(dup);
    expect_error("POST", "/api/v1/metrics", METRIC, 400, "invalid_field", "key");
    expect_error("POST", "/api/v1/layers", "{\"key\":\"checkout\"}", 400, "invalid_field", "key");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"d\",\"variants\":[{\"key\":\"a\"},{\"key\":\"a\"}]}", 400,
                 "invalid_field", "variants[1].key");
    /* invalid conditions */
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"c\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                 "\"condition\":\"country = FR\"}",
                 400, "invalid_field", "condition");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"c\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                 "\"condition\":{\"$or\":[{\"country\":{\"$inn\":[\"FR\"]}}]}}",
                 400, "invalid_field", "condition.$or[0].country.$inn");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"c\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                 "\"condition\":{\"country\":{\"$in\":\"FR\"}}}",
                 400, "invalid_field", "condition.country.$in");
    /* malformed JSON, unknown fields, wrong types, server-owned fields */
    expect_error("POST", "/api/v1/experiments", "{\"key\": ", 400, "invalid_json", "body");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"x\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],\"colour\":1}",
                 400, "invalid_field", "colour");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"x\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],\"coverage\":2}",
                 400, "invalid_field", "coverage");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"x\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],\"status\":"
                 "\"running\"}",
                 400, "invalid_field", "status");
    expect_error("POST", "/api/v1/experiments",
                 "{\"key\":\"x\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                 "\"overrides\":{\"u1\":\"zzz\"}}",
                 400, "invalid_field", "overrides.u1");
    expect_error("POST", "/api/v1/metrics",
                 "{\"key\":\"r\",\"type\":\"ratio\",\"event\":\"a\"}", 400, "invalid_field",
                 "denominator_event");
    expect_error("GET", "/api/v1/experiments/nope", NULL, 404, "not_found", "key");
    /* nothing of the refused requests was stored */
    json_t *list = call_ok("GET", "/api/v1/experiments", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "experiments")), 2);
    json_decref(list);
    /* the layer shows both ranges */
    json_t *layer = call_ok("GET", "/api/v1/layers/checkout", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(layer, "experiments")), 2);
    json_decref(layer);
}

static void test_sql_injection_is_literal(void **state)
{
    (void)state;
    start_web("web");
    const char *evil = "x'); DROP TABLE experiments; --";
    json_t *body = json_pack(
        "{s:s, s:s, s:s, s:[{s:s}, {s:s, s:{s:s}}], s:{s:s}}", "key", "robert'); --", "name",
        evil, "description", "\" OR 1=1 --", "variants", "key", "a", "key", "b'--", "payload",
        "q", evil, "overrides", "1 OR 1=1", "b'--");
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *created = call_ok("POST", "/api/v1/experiments", text, 201);
    free(text);
    json_t *got = call_ok("GET", "/api/v1/experiments/robert%27%29%3B%20--", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(got, "name")), evil);
    assert_string_equal(json_string_value(json_object_get(got, "description")), "\" OR 1=1 --");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(json_object_get(got, "variants"), 1),
                                            "payload"),
                            "q")),
                        evil);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(got, "overrides"), "1 OR 1=1")), "b'--");
    assert_true(json_equal(created, got));
    json_t *list = call_ok("GET", "/api/v1/experiments?q=DROP%20TABLE", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "experiments")), 1);
    json_decref(list);
    json_decref(created);
    json_decref(got);
    json_decref(body);
}

struct racer {
    const char *body;
    int status;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct http_response resp;
    if (api("PUT", "/api/v1/experiments/exp-a", g_key, r->body, "If-Match: \"1\"\r\n", &resp) ==
        0)
        r->status = resp.status;
    http_response_free(&resp);
    return NULL;
}

static void test_concurrent_updates_and_audit(void **state)
{
    (void)state;
    start_web("web");
    json_decref(call_ok("POST", "/api/v1/metrics", METRIC, 201));
    char *a = experiment_body("exp-a", NULL, 0, 0);
    json_decref(call_ok("POST", "/api/v1/experiments", a, 201));
    free(a);
    /* two writers from version 1 at the same time: one wins, the other gets 409 */
    struct racer r1 = {"{\"coverage\":0.25}", 0}, r2 = {"{\"coverage\":0.75}", 0};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, race, &r1);
    pthread_create(&t2, NULL, race, &r2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_true((r1.status == 200 && r2.status == 409) || (r1.status == 409 && r2.status == 200));
    double winner = r1.status == 200 ? 0.25 : 0.75;
    json_t *e = call_ok("GET", "/api/v1/experiments/exp-a", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(e, "version")), 2);
    assert_true(json_real_value(json_object_get(e, "coverage")) == winner);
    json_decref(e);
    /* a stale write gets 409 with the current version; the body's version works too */
    int st;
    json_t *c = call("PUT", "/api/v1/experiments/exp-a", "{\"version\":1,\"coverage\":0.1}", &st);
    assert_int_equal(st, 409);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "error"),
                                                        "current_version")),
                     2);
    json_decref(c);
    expect_error("PUT", "/api/v1/experiments/exp-a", "{\"coverage\":0.1}", 400, "invalid_field",
                 "version");
    /* the audit log shows the winning change with its diff, and only it */
    json_t *log = call_ok("GET", "/api/v1/audit?entity_type=experiment&entity_key=exp-a", NULL,
                          200);
    json_t *entries = json_object_get(log, "entries");
    assert_int_equal(json_array_size(entries), 2); /* create, one update */
    json_t *upd = json_array_get(entries, 0);
    assert_string_equal(json_string_value(json_object_get(upd, "action")), "experiment.update");
    assert_true(strncmp(json_string_value(json_object_get(upd, "actor")), "key:adm_", 8) == 0);
    assert_true(json_integer_value(json_object_get(upd, "at")) > 1600000000000LL);
    json_t *changes = json_object_get(upd, "changes");
    int saw_coverage = 0;
    size_t i;
    json_t *ch;
    json_array_foreach(changes, i, ch)
    {
        const char *f = json_string_value(json_object_get(ch, "field"));
        if (strcmp(f, "coverage") == 0) {
            saw_coverage = 1;
            assert_true(json_real_value(json_object_get(ch, "before")) == 1.0);
            assert_true(json_real_value(json_object_get(ch, "after")) == winner);
        } else {
            assert_string_equal(f, "version"); /* nothing else changed */
        }
    }
    assert_true(saw_coverage);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(upd, "before"),
                                                        "version")),
                     1);
    json_decref(log);
}

static void test_phases_and_transitions(void **state)
{
    (void)state;
    start_web("web");
    json_decref(call_ok("POST", "/api/v1/metrics", METRIC, 201));
    char *a = experiment_body("exp-a", NULL, 0, 0);
    json_decref(call_ok("POST", "/api/v1/experiments", a, 201));
    free(a);
    /* a draft's weights change without a new phase */
    json_t *e = call_ok("PUT", "/api/v1/experiments/exp-a",
                        "{\"version\":1,\"variants\":[{\"key\":\"control\",\"weight\":0.4},"
                        "{\"key\":\"treatment\",\"weight\":0.6}]}",
                        200);
    assert_int_equal(json_integer_value(json_object_get(e, "phase")), 1);
    json_decref(e);
    e = call_ok("POST", "/api/v1/experiments/exp-a/start", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "running");
    json_decref(e);
    expect_error("POST", "/api/v1/experiments/exp-a/start", NULL, 409, "conflict", "status");
    expect_error("POST", "/api/v1/experiments/exp-a/jump", NULL, 404, "not_found", "action");
    /* coverage: same phase, same seed */
    e = call_ok("PUT", "/api/v1/experiments/exp-a", "{\"version\":3,\"coverage\":0.5}", 200);
    assert_int_equal(json_integer_value(json_object_get(e, "phase")), 1);
    assert_string_equal(json_string_value(json_object_get(e, "seed")), "exp-a");
    json_decref(e);
    /* weights of a running experiment: phase 2 with a new seed */
    e = call_ok("PUT", "/api/v1/experiments/exp-a",
                "{\"version\":4,\"variants\":[{\"key\":\"control\",\"weight\":0.5},"
                "{\"key\":\"treatment\",\"weight\":0.5}]}",
                200);
    assert_int_equal(json_integer_value(json_object_get(e, "phase")), 2);
    assert_string_not_equal(json_string_value(json_object_get(e, "seed")), "exp-a");
    json_decref(e);
    /* an explicit seed change: phase 3 */
    e = call_ok("PUT", "/api/v1/experiments/exp-a", "{\"version\":5,\"seed\":\"fresh\"}", 200);
    assert_int_equal(json_integer_value(json_object_get(e, "phase")), 3);
    assert_string_equal(json_string_value(json_object_get(e, "seed")), "fresh");
    json_decref(e);
    /* a GET echoed back as the PUT body is accepted (server-owned fields unchanged) */
    struct http_response r;
    assert_int_equal(api("GET", "/api/v1/experiments/exp-a", g_key, NULL, NULL, &r), 0);
    char etag[32];
    assert_non_null(http_header(&r, "etag", etag, sizeof(etag)));
    assert_string_equal(etag, "\"6\"");
    e = call_ok("PUT", "/api/v1/experiments/exp-a", r.body, 200);
    http_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(e, "phase")), 3);
    json_decref(e);
    expect_error("PUT", "/api/v1/experiments/exp-a", "{\"version\":7,\"status\":\"stopped\"}", 400,
                 "invalid_field", "status");
    e = call_ok("POST", "/api/v1/experiments/exp-a/pause", NULL, 200);
    json_decref(e);
    e = call_ok("POST", "/api/v1/experiments/exp-a/stop", NULL, 200);
    json_decref(e);
    e = call_ok("DELETE", "/api/v1/experiments/exp-a", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "archived");
    json_decref(e);
    json_t *list = call_ok("GET", "/api/v1/experiments", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "experiments")), 0);
    json_decref(list);
    list = call_ok("GET", "/api/v1/experiments?status=archived", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "experiments")), 1);
    json_decref(list);
}

static int64_t manifest_version(void)
{
    int st;
    json_t *m = call("GET", "/v1/snapshots/latest", NULL, &st);
    int64_t v = st == 200 ? json_integer_value(json_object_get(m, "version")) : -1;
    json_decref(m);
    return v;
}

static void test_publishing(void **state)
{
    (void)state;
    start_web("web");
    /* a first, empty snapshot exists from the start */
    assert_int_equal(manifest_version(), 1);
    json_t *p = call_ok("POST", "/api/v1/snapshots", NULL, 201);
    assert_int_equal(json_integer_value(json_object_get(p, "version")), 2);
    json_decref(p);
    /* a change publishes on its own after the debounce */
    json_decref(call_ok("POST", "/api/v1/metrics", METRIC, 201));
    char *a = experiment_body("exp-a", NULL, 0, 0);
    json_decref(call_ok("POST", "/api/v1/experiments", a, 201));
    free(a);
    json_decref(call_ok("POST", "/api/v1/experiments/exp-a/start", NULL, 200));
    json_t *key = call_ok("POST", "/api/v1/client-keys", "{\"name\":\"web app\"}", 201);
    const char *client_key = json_string_value(json_object_get(key, "key"));
    assert_non_null(client_key);
    int64_t v = 0;
    for (int i = 0; i < 200 && (v = manifest_version()) < 3; i++)
        sleep_ms(25);
    assert_true(v >= 3);
    for (int i = 0; i < 100; i++) { /* wait for the debounce to settle */
        sleep_ms(100);
        int64_t again = manifest_version();
        if (again == v)
            break;
        v = again;
    }
    /* manifest, ETag, 304 */
    struct http_response r;
    assert_int_equal(api("GET", "/v1/snapshots/latest", NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    char etag[96], cc[96], hdr[160];
    assert_non_null(http_header(&r, "etag", etag, sizeof(etag)));
    assert_non_null(http_header(&r, "cache-control", cc, sizeof(cc)));
    assert_string_equal(cc, "no-cache");
    json_t *m = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), v);
    snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", etag);
    assert_int_equal(api("GET", "/v1/snapshots/latest", NULL, NULL, hdr, &r), 0);
    assert_int_equal(r.status, 304);
    http_response_free(&r);
    /* the file: immutable, strong ETag = its SHA-256, the size and hash of the manifest */
    const char *url = json_string_value(json_object_get(m, "url"));
    assert_int_equal(api("GET", url, NULL, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "cache-control", cc, sizeof(cc)));
    assert_string_equal(cc, "public, max-age=31536000, immutable");
    assert_non_null(http_header(&r, "etag", etag, sizeof(etag)));
    char want[80];
    snprintf(want, sizeof(want), "\"%s\"", json_string_value(json_object_get(m, "sha256")));
    assert_string_equal(etag, want);
    assert_int_equal((int64_t)r.body_len, json_integer_value(json_object_get(m, "size")));
    char file[512], sha[65];
    snprintf(file, sizeof(file), "%s/downloaded.db", g_cp.dir);
    FILE *fp = fopen(file, "wb");
    fwrite(r.body, 1, r.body_len, fp);
    fclose(fp);
    http_response_free(&r);
    int64_t size = 0;
    assert_int_equal(ab_snapshot_file_sha256(file, sha, &size, NULL), AB_OK);
    assert_string_equal(sha, json_string_value(json_object_get(m, "sha256")));
    /* ... and a valid snapshot holding the running experiment and the client key's hash */
    struct ab_snapshot *s = NULL;
    assert_int_equal(ab_snapshot_read(file, &s, NULL), AB_OK);
    assert_int_equal(s->version, v);
    assert_int_equal(s->nexperiments, 1);
    assert_string_equal(s->experiments[0].key, "exp-a");
    assert_int_equal(s->nclient_keys, 1);
    char kh[65];
    ab_snapshot_key_hash(client_key, kh);
    assert_string_equal(s->client_key_hashes[0], kh);
    ab_snapshot_free(s);
    snprintf(hdr, sizeof(hdr), "If-None-Match: %s\r\n", etag);
    assert_int_equal(api("GET", url, NULL, NULL, hdr, &r), 0);
    assert_int_equal(r.status, 304);
    http_response_free(&r);
    json_decref(m);
    /* a revoked client key leaves the next snapshot */
    char revoke[64];
    snprintf(revoke, sizeof(revoke), "/api/v1/client-keys/%lld",
             (long long)json_integer_value(json_object_get(key, "id")));
    json_t *revoked = call_ok("DELETE", revoke, NULL, 200);
    assert_true(json_integer_value(json_object_get(revoked, "revoked_at")) > 0);
    json_decref(revoked);
    expect_error("DELETE", revoke, NULL, 404, "not_found", "id");
    json_t *keys = call_ok("GET", "/api/v1/client-keys", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(keys, "keys")), 0);
    json_decref(keys);
    json_decref(key);
    for (int i = 0; i < 200 && manifest_version() == v; i++) /* the automatic publish */
        sleep_ms(25);
    for (int i = 0; i < 100; i++) { /* ... and its debounce settled */
        sleep_ms(100);
        int64_t again = manifest_version();
        if (again == v)
            break;
        v = again;
    }
    snprintf(file, sizeof(file), "%s/data/%s", g_cp.dir, "snapshots/current.db");
    assert_int_equal(ab_snapshot_read(file, &s, NULL), AB_OK);
    assert_int_equal(s->version, v);
    assert_int_equal(s->nclient_keys, 0);
    ab_snapshot_free(s);
    /* versions strictly increase; only the newest 3 files are kept */
    for (int i = 0; i < 4; i++) {
        p = call_ok("POST", "/api/v1/snapshots", NULL, 201);
        assert_int_equal(json_integer_value(json_object_get(p, "version")), v + 1 + i);
        json_decref(p);
    }
    int64_t newest = v + 4;
    json_t *list = call_ok("GET", "/api/v1/snapshots", NULL, 200);
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(list, "snapshots"), i, row)
    {
        int64_t rv = json_integer_value(json_object_get(row, "version"));
        assert_int_equal(rv, newest - (int64_t)i);
        assert_int_equal(json_is_true(json_object_get(row, "available")), rv > newest - 3);
    }
    json_decref(list);
    char path[64];
    snprintf(path, sizeof(path), "/v1/snapshots/%lld.db", (long long)(newest - 3));
    expect_error("GET", path, NULL, 404, "not_found", "version");
    expect_error("GET", "/v1/snapshots/007.db", NULL, 404, "not_found", "version");
    expect_error("GET", "/v1/snapshots/..%2Fabacus.db", NULL, 404, "not_found", "version");
}

static void test_up_serves_what_it_publishes(void **state)
{
    (void)state;
    start_web("up");
    json_decref(call_ok("POST", "/api/v1/metrics", METRIC, 201));
    char *a = experiment_body("exp-a", NULL, 0, 0);
    json_decref(call_ok("POST", "/api/v1/experiments", a, 201));
    free(a);
    json_decref(call_ok("POST", "/api/v1/experiments/exp-a/start", NULL, 200));
    int st = 0;
    for (int i = 0; i < 200; i++) {
        struct http_response r;
        assert_int_equal(http_do(g_cp.port, "GET", "/v1/assign?experiment=exp-a&unit=u1", NULL,
                                 NULL, 0, &r),
                         0);
        st = r.status;
        http_response_free(&r);
        if (st == 200)
            break;
        sleep_ms(25);
    }
    assert_int_equal(st, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_auth_and_first_key, teardown),
        cmocka_unit_test_teardown(test_validation_errors, teardown),
        cmocka_unit_test_teardown(test_sql_injection_is_literal, teardown),
        cmocka_unit_test_teardown(test_concurrent_updates_and_audit, teardown),
        cmocka_unit_test_teardown(test_phases_and_transitions, teardown),
        cmocka_unit_test_teardown(test_publishing, teardown),
        cmocka_unit_test_teardown(test_up_serves_what_it_publishes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
