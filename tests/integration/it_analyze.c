/*
 * The analysis end to end, through the real binary: `abacus up` with a metric set and an
 * experiment created through the admin API and started; 6,000 simulated units ask the assign node
 * for their variant, and their exposures and conversions (treatment converts at 15%, control at
 * 10%: a planted relative lift of +50%) and revenue are posted to the collector. `abacus analyze
 * --json` then computes the results: they validate against results.schema.json (Debian's
 * python3-jsonschema), contain the planted effect inside their intervals, call it significant,
 * and equal what the admin API's analyze and results endpoints return.
 */
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>
#include "harness.h"

#define UNITS 6000
#define BATCH 450 /* flushed once it reaches this; a unit adds up to 3 (the limit is 500) */

static struct abacus_proc g_up;
static char g_admin[128], g_ingest[128];

/* One request with a bearer token and an optional JSON body; the parsed answer in *doc. */
static int call(const char *method, const char *path, const char *token, const char *body,
                json_t **doc)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = blen + 1024 + strlen(path);
    char *raw = malloc(cap);
    int n = snprintf(raw, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, token, blen);
    memcpy(raw + n, body != NULL ? body : "", blen);
    struct http_response r;
    int rc = http_raw(g_up.port, raw, (size_t)n + blen, &r);
    free(raw);
    if (rc != 0)
        return -1;
    if (doc != NULL)
        *doc = json_loads(r.body != NULL ? r.body : "", 0, NULL);
    int status = r.status;
    http_response_free(&r);
    return status;
}

static void expect(const char *method, const char *path, const char *token, const char *body,
                   int want)
{
    json_t *doc = NULL;
    int got = call(method, path, token, body, &doc);
    if (got != want) {
        char *text = doc != NULL ? json_dumps(doc, 0) : NULL;
        fail_msg("%s %s: status %d, want %d: %s", method, path, got, want,
                 text != NULL ? text : "(no JSON)");
    }
    json_decref(doc);
}

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
}

static uint64_t g_rng = 7;
static double uniform(void)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The variant the assign node gives unit u. */
static int variant_of(const char *unit)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/assign?experiment=checkout&unit=%s", unit);
    struct http_response r;
    assert_int_equal(http_do(g_up.port, "GET", path, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_non_null(doc);
    assert_true(json_is_true(json_object_get(doc, "in_experiment")));
    int v = (int)json_integer_value(json_object_get(doc, "variation_id"));
    json_decref(doc);
    return v;
}

static void flush(json_t *events)
{
    if (json_array_size(events) == 0)
        return;
    json_t *body = json_pack("{s:O}", "events", events);
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *doc = NULL;
    int st = call("POST", "/v1/events", g_ingest, text, &doc);
    if (st != 200 || json_integer_value(json_object_get(doc, "accepted")) !=
                         (json_int_t)json_array_size(events))
        fail_msg("POST /v1/events: %d %s", st, text);
    free(text);
    json_decref(doc);
    json_decref(body);
    json_array_clear(events);
}

/* Waits until the collector knows the ingest key and the experiment (after a publish). */
static void wait_collector(void)
{
    char body[256];
    for (int i = 0; i < 200; i++) {
        snprintf(body, sizeof(body),
                 "{\"events\":[{\"id\":\"probe-%d\",\"type\":\"exposure\",\"ts\":%lld,"
                 "\"unit\":\"probe\",\"experiment\":\"checkout\",\"variant\":\"control\"}]}",
                 i, (long long)now_ms());
        json_t *doc = NULL;
        int st = call("POST", "/v1/events", g_ingest, body, &doc);
        int ok = st == 200 && json_integer_value(json_object_get(doc, "accepted")) == 1;
        json_decref(doc);
        if (ok)
            return;
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("the collector never accepted the new ingest key and experiment");
}

static const json_t *metric(const json_t *results, const char *key)
{
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(results, "metrics"), i, m)
        if (strcmp(json_string_value(json_object_get(m, "metric")), key) == 0)
            return m;
    fail_msg("no metric %s in the results", key);
    return NULL;
}

static void inside(const char *what, const json_t *interval, double value)
{
    double lo = json_number_value(json_array_get(interval, 0));
    double hi = json_number_value(json_array_get(interval, 1));
    printf("%s: [%.4f, %.4f] around the planted %.4f\n", what, lo, hi, value);
    if (!(lo <= value && value <= hi))
        fail_msg("%s [%g, %g] misses the planted effect %g", what, lo, hi, value);
}

/* The results without computed_at, which differs between two computations. */
/* The results without when and how they were computed (the API adds its refresh state). */
static json_t *comparable(json_t *r)
{
    json_t *c = json_deep_copy(r);
    json_object_del(c, "computed_at");
    json_object_del(c, "refresh");
    return c;
}

static void test_planted_effect(void **state)
{
    (void)state;
    assert_int_equal(abacus_start(&g_up, NULL), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/data/admin.key", g_up.dir);
    read_file(path, g_admin, sizeof(g_admin));

    expect("POST", "/api/v1/metrics", g_admin,
           "{\"key\":\"purchase\",\"name\":\"Purchase\",\"type\":\"binomial\","
           "\"event\":\"purchase\",\"direction\":\"increase\"}",
           201);
    expect("POST", "/api/v1/metrics", g_admin,
           "{\"key\":\"revenue\",\"name\":\"Revenue\",\"type\":\"mean\",\"event\":\"revenue\","
           "\"direction\":\"increase\"}",
           201);
    expect("POST", "/api/v1/experiments", g_admin,
           "{\"key\":\"checkout\",\"name\":\"Checkout button\",\"hash_attribute\":\"id\","
           "\"coverage\":1.0,\"variants\":[{\"key\":\"control\",\"weight\":0.5,\"payload\":{}},"
           "{\"key\":\"treatment\",\"weight\":0.5,\"payload\":{\"color\":\"green\"}}],"
           "\"metrics\":[{\"key\":\"purchase\",\"role\":\"goal\"},"
           "{\"key\":\"revenue\",\"role\":\"secondary\"}]}",
           201);
    expect("POST", "/api/v1/experiments/checkout/start", g_admin, NULL, 200);
    json_t *key = NULL;
    assert_int_equal(call("POST", "/api/v1/ingest-keys", g_admin, "{\"name\":\"test\"}", &key),
                     201);
    snprintf(g_ingest, sizeof(g_ingest), "%s", json_string_value(json_object_get(key, "key")));
    json_decref(key);
    expect("POST", "/api/v1/snapshots", g_admin, NULL, 201);
    wait_collector();

    /* traffic: each unit asks for its variant, is exposed, and may convert and spend */
    json_t *events = json_array();
    int per_variant[2] = {0, 0};
    for (int u = 0; u < UNITS; u++) {
        char unit[32], id[48];
        snprintf(unit, sizeof(unit), "user-%d", u);
        int v = variant_of(unit);
        per_variant[v]++;
        int64_t ts = now_ms();
        snprintf(id, sizeof(id), "exp-%d", u);
        json_array_append_new(events, json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "id", id,
                                                "type", "exposure", "ts", (json_int_t)ts, "unit",
                                                unit, "experiment", "checkout", "variant",
                                                v ? "treatment" : "control"));
        if (uniform() < (v ? 0.15 : 0.10)) {
            snprintf(id, sizeof(id), "buy-%d", u);
            json_array_append_new(events, json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", id, "type",
                                                    "metric", "ts", (json_int_t)ts + 1, "unit",
                                                    unit, "metric", "purchase"));
            snprintf(id, sizeof(id), "rev-%d", u);
            json_array_append_new(events, json_pack("{s:s, s:s, s:I, s:s, s:s, s:f}", "id", id,
                                                    "type", "metric", "ts", (json_int_t)ts + 1,
                                                    "unit", unit, "metric", "revenue", "value",
                                                    20.0 + 40.0 * uniform()));
        }
        if (json_array_size(events) >= BATCH)
            flush(events);
    }
    flush(events);
    json_decref(events);
    printf("units: control %d, treatment %d\n", per_variant[0], per_variant[1]);

    /* abacus analyze, as a user runs it next to the running platform */
    char data[600], out[1 << 20];
    snprintf(data, sizeof(data), "%s/data", g_up.dir);
    const char *argv[] = {ABACUS_BIN, "analyze", "--data-dir", data, "--experiment", "checkout",
                          "--json", NULL};
    setenv("ABACUS_LOG_LEVEL", "warn", 1); /* run_command captures stderr too: only the JSON */
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    unsetenv("ABACUS_LOG_LEVEL");
    json_error_t jerr;
    json_t *results = json_loads(out, 0, &jerr);
    if (results == NULL)
        fail_msg("abacus analyze printed no JSON (%s): %.500s", jerr.text, out);
    char file[700];
    snprintf(file, sizeof(file), "%s/results.json", g_up.dir);
    assert_int_equal(json_dump_file(results, file, JSON_INDENT(1)), 0);
    char schema[600], vout[8192];
    snprintf(schema, sizeof(schema), "%s/results.schema.json", getenv("ABACUS_TEST_DATA"));
    const char *vargv[] = {VALIDATE_JSON, schema, file, NULL};
    int vrc = run_command(vargv, vout, sizeof(vout));
    printf("schema: %s", vout);
    assert_int_equal(vrc, 0);

    /* who was counted: every unit, in the variant the assign node gave it (the probe too) */
    const json_t *units = json_object_get(json_object_get(results, "units"), "by_variant");
    assert_int_equal(json_integer_value(json_object_get(units, "control")), per_variant[0] + 1);
    assert_int_equal(json_integer_value(json_object_get(units, "treatment")), per_variant[1]);
    assert_false(json_is_true(json_object_get(json_object_get(results, "srm"), "mismatch")));

    /* the planted effect: conversion 10% -> 15%, a relative lift of 0.5 */
    const json_t *cmp = json_array_get(json_object_get(metric(results, "purchase"), "comparisons"), 0);
    const json_t *rel = json_object_get(cmp, "relative");
    inside("purchase relative lift, sequential", json_object_get(rel, "ci_sequential"), 0.5);
    inside("purchase relative lift, fixed horizon", json_object_get(rel, "ci_fixed"), 0.5);
    inside("purchase absolute difference, sequential",
           json_object_get(json_object_get(cmp, "absolute"), "ci_sequential"), 0.05);
    assert_string_equal(json_string_value(json_object_get(cmp, "decision")),
                        "significant_positive");
    /* revenue per unit: 0.15 * 40 - 0.10 * 40 = +2.0 absolute */
    const json_t *rev = json_array_get(json_object_get(metric(results, "revenue"), "comparisons"), 0);
    inside("revenue absolute difference, sequential",
           json_object_get(json_object_get(rev, "absolute"), "ci_sequential"), 2.0);

    /* the admin API computes the same from the same events */
    json_t *api = NULL, *stored = NULL;
    assert_int_equal(call("POST", "/api/v1/experiments/checkout/analyze", g_admin, NULL, &api),
                     200);
    assert_int_equal(call("GET", "/api/v1/experiments/checkout/results", g_admin, NULL, &stored),
                     200);
    /* the API says when they were computed, and that the last attempt succeeded */
    const json_t *refresh = json_object_get(stored, "refresh");
    assert_true(json_is_object(refresh));
    assert_string_equal(json_string_value(json_object_get(refresh, "computed_at")),
                        json_string_value(json_object_get(stored, "computed_at")));
    assert_true(json_is_false(json_object_get(refresh, "stale")));
    assert_true(json_is_null(json_object_get(refresh, "error")));
    assert_true(json_is_false(json_object_get(refresh, "running")));
    json_t *a = comparable(results), *b = comparable(api), *c = comparable(stored);
    assert_true(json_equal(a, b));
    assert_true(json_equal(b, c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(api);
    json_decref(stored);
    json_decref(results);
    expect("GET", "/api/v1/experiments/nope/results", g_admin, NULL, 404);
    expect("GET", "/api/v1/experiments/checkout/results", "wrong-key", NULL, 401);
    assert_int_equal(abacus_stop(&g_up, SIGTERM, 20000), 0);
    abacus_cleanup(&g_up);
}

/* A failed assertion leaves the test early: the server is still stopped, by its PID. */
static int teardown(void **state)
{
    (void)state;
    if (g_up.pid > 0) {
        abacus_stop(&g_up, SIGTERM, 20000);
        abacus_cleanup(&g_up);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_planted_effect, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
