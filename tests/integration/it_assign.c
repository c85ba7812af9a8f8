/*
 * Integration tests of `abacus assign --snapshot-file`: the real binary on 127.0.0.1 serving a
 * snapshot with several experiments (weights, coverage < 1, a layer, a condition, an override, a
 * paused one). Its HTTP answers are checked against the evaluation core run in this process on
 * the same snapshot; then bad input, reloads, rejected files and the SDK endpoints.
 */
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
#include "abacus/snapshot.h"
#include "assign_int.h"
#include "harness.h"

static struct abacus_proc g_node;
static char g_file[512];

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void add_experiment(struct ab_snapshot *s, const char *key, int running, double coverage,
                           const double *weights, size_t n)
{
    s->experiments = realloc(s->experiments, (s->nexperiments + 1) * sizeof(*s->experiments));
    struct ab_snapshot_experiment *e = &s->experiments[s->nexperiments++];
    memset(e, 0, sizeof(*e));
    e->key = strdup(key);
    e->running = running;
    e->hash_attribute = strdup("id");
    e->hash_version = 2;
    e->seed = strdup(key);
    e->coverage = coverage;
    e->phase = 1;
    e->version = 1;
    e->nvariants = n;
    e->variants = calloc(n, sizeof(*e->variants));
    static const char *const NAMES[] = {"control", "treatment", "third", "fourth"};
    for (size_t i = 0; i < n; i++) {
        e->variants[i].key = strdup(NAMES[i]);
        e->variants[i].weight = weights[i];
        e->variants[i].payload = json_pack("{s:s, s:i}", "name", NAMES[i], "index", (int)i);
    }
}

/* The payload of variation v of experiment key in s. */
static const json_t *variant_payload(const struct ab_snapshot *s, const char *key, int v)
{
    for (size_t i = 0; i < s->nexperiments; i++)
        if (strcmp(s->experiments[i].key, key) == 0)
            return s->experiments[i].variants[v].payload;
    fail_msg("no experiment %s in the test snapshot", key);
    return NULL;
}

/* The snapshot of this test at a given version; experiment "weights" gets weights w0/1-w0. */
static struct ab_snapshot *make_snapshot(int64_t version, double w0)
{
    struct ab_snapshot *s = calloc(1, sizeof(*s));
    s->version = version;
    s->created_at = (int64_t)time(NULL) * 1000;
    double half[2] = {0.5, 0.5}, w[2] = {w0, 1 - w0}, three[3] = {0.2, 0.3, 0.5};
    add_experiment(s, "coverage-half", 1, 0.5, half, 2);
    add_experiment(s, "french-only", 1, 1, half, 2);
    s->experiments[1].condition = json_pack("{s:s}", "country", "FR");
    add_experiment(s, "layer-a", 1, 1, three, 3);
    s->experiments[2].layer = strdup("checkout");
    s->experiments[2].layer_start = 0;
    s->experiments[2].layer_end = 0.4;
    add_experiment(s, "overridden", 1, 1, half, 2);
    s->experiments[3].noverrides = 1;
    s->experiments[3].overrides = calloc(1, sizeof(*s->experiments[3].overrides));
    s->experiments[3].overrides[0].unit = strdup("unit-42");
    s->experiments[3].overrides[0].variant = strdup("treatment");
    add_experiment(s, "paused", 0, 1, half, 2);
    add_experiment(s, "weights", 1, 1, w, 2);
    s->nclient_keys = 1;
    s->client_key_hashes = calloc(1, sizeof(char *));
    s->client_key_hashes[0] = malloc(65);
    ab_snapshot_key_hash("sdk-test-key", s->client_key_hashes[0]);
    return s;
}

static void write_snapshot(int64_t version, double w0)
{
    struct ab_snapshot *s = make_snapshot(version, w0);
    struct ab_errinfo ei;
    if (ab_snapshot_write(s, g_file, &ei) != AB_OK)
        fail_msg("cannot write snapshot: %s", ei.message);
    ab_snapshot_free(s);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_node, 0, sizeof(g_node));
    if (make_temp_dir(g_node.dir) != 0)
        return -1;
    snprintf(g_file, sizeof(g_file), "%s/snapshot.db", g_node.dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    abacus_cleanup(&g_node);
    return 0;
}

static void start_node(void)
{
    const char *args[] = {"assign", "--snapshot-file", g_file, "--threads", "2",
                          "--poll-interval", "1", NULL};
    assert_int_equal(abacus_spawn(&g_node, args), 0);
}

static json_t *get_json(const char *path, int *status)
{
    struct http_response r;
    assert_int_equal(http_do(g_node.port, "GET", path, NULL, NULL, 0, &r), 0);
    *status = r.status;
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_non_null(doc);
    return doc;
}

static const char *error_field(const json_t *doc)
{
    const char *f = json_string_value(json_object_get(json_object_get(doc, "error"), "field"));
    return f != NULL ? f : "";
}

/* Waits (bounded) until /readyz gives want. */
static int wait_ready(int want)
{
    for (int i = 0; i < 200; i++) {
        struct http_response r;
        if (http_do(g_node.port, "GET", "/readyz", NULL, NULL, 0, &r) == 0) {
            int st = r.status;
            http_response_free(&r);
            if (st == want)
                return 1;
        }
        sleep_ms(50);
    }
    return 0;
}

/* Waits (bounded) until /metrics contains text. */
static int wait_metric(const char *text)
{
    for (int i = 0; i < 200; i++) {
        struct http_response r;
        int found = http_do(g_node.port, "GET", "/metrics", NULL, NULL, 0, &r) == 0 &&
                    strstr(r.body, text) != NULL;
        http_response_free(&r);
        if (found)
            return 1;
        sleep_ms(50);
    }
    return 0;
}

static int64_t served_version(void)
{
    int st;
    json_t *d = get_json("/v1/assign?experiment=weights&unit=u1", &st);
    int64_t v = json_integer_value(json_object_get(d, "snapshot_version"));
    json_decref(d);
    return st == 200 ? v : -1;
}

static void test_answers_match_the_core(void **state)
{
    (void)state;
    write_snapshot(1, 0.3);
    start_node();
    assert_true(wait_ready(200));
    struct ab_snapshot *s = make_snapshot(1, 0.3);
    struct assign_snap *snap;
    assert_int_equal(assign_snap_compile(s, &snap, NULL), AB_OK);
    static const char *const KEYS[] = {"coverage-half", "french-only", "layer-a", "overridden",
                                       "paused", "weights"};
    int in[6] = {0}, seen_reasons[16] = {0};
    for (int u = 0; u < 300; u++) {
        char unit[32];
        snprintf(unit, sizeof(unit), u == 0 ? "unit-42" : "user-%d", u);
        const char *country = u % 3 == 0 ? "FR" : "DE";
        for (int k = 0; k < 6; k++) {
            char path[256];
            snprintf(path, sizeof(path), "/v1/assign?experiment=%s&unit=%s&attr.country=%s",
                     KEYS[k], unit, country);
            int st;
            json_t *got = get_json(path, &st);
            assert_int_equal(st, 200);
            json_t *attrs = json_pack("{s:s, s:s}", "id", unit, "country", country);
            struct assign_context ctx = {.attributes = attrs};
            struct assign_result res;
            const struct assign_entry *e = assign_snap_find(snap, KEYS[k]);
            assign_run(e->exp, &ctx, &res);
            json_decref(attrs);
            assert_string_equal(json_string_value(json_object_get(got, "variant")),
                                e->exp->meta[res.variation].key);
            assert_int_equal(json_is_true(json_object_get(got, "in_experiment")),
                             res.in_experiment);
            assert_string_equal(json_string_value(json_object_get(got, "reason")),
                                assign_reason_name(res.reason));
            if (res.hash_used)
                assert_true(json_real_value(json_object_get(got, "hash_value")) == res.bucket);
            assert_true(json_equal(json_object_get(got, "payload"),
                                   variant_payload(s, KEYS[k], res.variation)));
            assert_string_equal(json_string_value(json_object_get(got, "experiment")), KEYS[k]);
            assert_string_equal(json_string_value(json_object_get(got, "unit")), unit);
            assert_int_equal(json_integer_value(json_object_get(got, "variation_id")),
                             res.variation);
            assert_int_equal(json_integer_value(json_object_get(got, "phase")), 1);
            assert_int_equal(json_integer_value(json_object_get(got, "snapshot_version")), 1);
            in[k] += res.in_experiment;
            seen_reasons[res.reason]++;
            json_decref(got);
        }
    }
    /* the fixture exercises what it claims to */
    assert_true(in[0] > 90 && in[0] < 210);    /* coverage 0.5 */
    assert_true(in[1] > 60 && in[1] < 140);    /* a third are French */
    assert_true(in[2] > 70 && in[2] < 170);    /* layer range 0.4 */
    assert_int_equal(in[4], 0);                /* paused: nobody */
    assert_true(seen_reasons[ASSIGN_COVERAGE] > 0 && seen_reasons[ASSIGN_CONDITION] > 0 &&
                seen_reasons[ASSIGN_NAMESPACE] > 0 && seen_reasons[ASSIGN_NOT_RUNNING] > 0);
    /* the override */
    int st;
    json_t *d = get_json("/v1/assign?experiment=overridden&unit=unit-42", &st);
    assert_string_equal(json_string_value(json_object_get(d, "variant")), "treatment");
    assert_string_equal(json_string_value(json_object_get(d, "reason")), "forced");
    json_decref(d);
    assign_snap_release(snap);
    ab_snapshot_free(s);
}

static void expect_error(const char *method, const char *path, const char *ctype,
                         const char *body, size_t len, int status, const char *code,
                         const char *field)
{
    struct http_response r;
    assert_int_equal(http_do(g_node.port, method, path, ctype, body, len, &r), 0);
    if (r.status != status)
        fail_msg("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                        code);
    if (field != NULL)
        assert_string_equal(error_field(doc), field);
    json_decref(doc);
    http_response_free(&r);
}

static void test_bad_input(void **state)
{
    (void)state;
    write_snapshot(1, 0.3);
    start_node();
    assert_true(wait_ready(200));
    expect_error("GET", "/v1/assign?experiment=nope&unit=u", NULL, NULL, 0, 404, "not_found",
                 "experiment");
    expect_error("GET", "/v1/assign?experiment=weights", NULL, NULL, 0, 400, "invalid_field",
                 "unit");
    expect_error("GET", "/v1/assign?unit=u", NULL, NULL, 0, 400, "invalid_field", "experiment");
    expect_error("GET", "/v1/assign?experiment=weights&unit=a&unit=b", NULL, NULL, 0, 400,
                 "invalid_field", "unit");
    expect_error("GET", "/v1/assign?experiment=weights&experiment=paused&unit=a", NULL, NULL, 0,
                 400, "invalid_field", "experiment");
    expect_error("GET", "/v1/assign?experiment=weights&unit=%zz", NULL, NULL, 0, 400,
                 "bad_request", "unit");
    expect_error("GET", "/v1/assign?experiment=weights&unit=a%00b", NULL, NULL, 0, 400,
                 "bad_request", "unit");
    expect_error("GET", "/v1/assign?experiment=weights&unit=%C3%28", NULL, NULL, 0, 400,
                 "bad_request", "unit");
    expect_error("GET", "/v1/assign?experiment=weights&unit=u&colour=red", NULL, NULL, 0, 400,
                 "invalid_field", "colour");
    char path[600] = "/v1/assign?experiment=weights&unit=";
    size_t l = strlen(path);
    memset(path + l, 'x', 257);
    path[l + 257] = '\0';
    expect_error("GET", path, NULL, NULL, 0, 400, "invalid_field", "unit");
    path[l + 256] = '\0'; /* 256 bytes is fine */
    int st;
    json_t *d = get_json(path, &st);
    assert_int_equal(st, 200);
    json_decref(d);
    /* POST */
    const char *json = "application/json";
    expect_error("POST", "/v1/assign", json, "{\"unit\": ", 9, 400, "invalid_json", "body");
    struct http_response r;
    http_do(g_node.port, "POST", "/v1/assign", json, "{\"unit\":\n 5x}", 13, &r);
    assert_non_null(strstr(r.body, "line 2"));
    http_response_free(&r);
    expect_error("POST", "/v1/assign", json, "{\"unit\": 5}", 11, 400, "invalid_field", "unit");
    expect_error("POST", "/v1/assign", json, "{\"unit\": \"u\", \"experiments\": [\"nope\"]}", 38,
                 404, "not_found", "experiments[0]");
    expect_error("POST", "/v1/assign", json, "{\"unit\": \"u\", \"extra\": 1}", 25, 400,
                 "invalid_field", "extra");
    expect_error("POST", "/v1/assign", "text/plain", "{}", 2, 415, "unsupported_media_type",
                 "content-type");
    size_t big = 70 * 1024;
    char *body = malloc(big);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    expect_error("POST", "/v1/assign", json, body, big, 413, "payload_too_large", "body");
    free(body);
    /* still serving */
    d = get_json("/v1/assign?experiment=weights&unit=u1", &st);
    assert_int_equal(st, 200);
    json_decref(d);
}

/* The answer to POST body b (200 expected), parsed. */
static json_t *post_json(const char *b)
{
    struct http_response r;
    assert_int_equal(
        http_do(g_node.port, "POST", "/v1/assign", "application/json", b, strlen(b), &r), 0);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_non_null(doc);
    return doc;
}

static void test_post_all_running(void **state)
{
    (void)state;
    write_snapshot(1, 0.3);
    start_node();
    assert_true(wait_ready(200));
    /* every item equals the GET answer for its experiment, for units in and out of each
     * experiment (coverage, condition, layer, override, paused), so that an item in by its hash
     * is followed both by items in and by items out (the answer joins such items) */
    int in_then_in = 0, in_then_out = 0, out_then_in = 0;
    struct http_response r;
    json_t *doc, *list;
    for (int u = 0; u < 40; u++) {
        const char *country = u % 3 == 0 ? "DE" : "FR";
        char b[160];
        snprintf(b, sizeof(b), "{\"unit\":\"user-%d\",\"attributes\":{\"country\":\"%s\"}}",
                 u == 0 ? 7 : u, country);
        doc = post_json(b);
        list = json_object_get(doc, "assignments");
        assert_int_equal(json_array_size(list), 5); /* the running ones, not the paused one */
        size_t i;
        json_t *a;
        int was_in = -1;
        json_array_foreach(list, i, a)
        {
            char path[256];
            snprintf(path, sizeof(path), "/v1/assign?experiment=%s&unit=user-%d&attr.country=%s",
                     json_string_value(json_object_get(a, "experiment")), u == 0 ? 7 : u, country);
            int st;
            json_t *one = get_json(path, &st);
            assert_true(json_equal(one, a));
            json_decref(one);
            int in = strcmp(json_string_value(json_object_get(a, "reason")), "hashed") == 0;
            in_then_in += was_in == 1 && in;
            in_then_out += was_in == 1 && !in;
            out_then_in += was_in == 0 && in;
            was_in = in;
        }
        json_decref(doc);
    }
    assert_true(in_then_in > 0 && in_then_out > 0 && out_then_in > 0);

    /* a unit that JSON must escape comes back as sent, in the answer of a given list */
    const char *odd = "{\"unit\":\"q\\\"u\\\\o\\n\u00e9\U0001F600\","
                      "\"experiments\":[\"weights\"]}";
    assert_int_equal(
        http_do(g_node.port, "POST", "/v1/assign", "application/json", odd, strlen(odd), &r), 0);
    assert_int_equal(r.status, 200);
    doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_non_null(doc);
    list = json_object_get(doc, "assignments");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "unit")),
                        "q\"u\\o\n\u00e9\U0001F600");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "experiment")),
                        "weights");
    assert_int_equal(json_integer_value(json_object_get(doc, "snapshot_version")), 1);
    json_decref(doc);

    /* a list longer than the node evaluates at once (64): every answer in order, as GET gives
     * it; an unknown key past the first 64 is still a 404 naming its index */
    static const char *const KEYS[] = {"coverage-half", "french-only", "layer-a", "overridden",
                                       "paused", "weights"};
    for (int unknown = 0; unknown < 2; unknown++) {
        char body[4096] = "{\"unit\":\"user-9\",\"attributes\":{\"country\":\"FR\"},"
                          "\"experiments\":[";
        for (int k = 0; k < 70; k++)
            snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"%s\"",
                     k > 0 ? "," : "", unknown && k == 66 ? "layer-z" : KEYS[k % 6]);
        snprintf(body + strlen(body), sizeof(body) - strlen(body), "]}");
        if (unknown) {
            expect_error("POST", "/v1/assign", "application/json", body, strlen(body), 404,
                         "not_found", "experiments[66]");
            break;
        }
        assert_int_equal(
            http_do(g_node.port, "POST", "/v1/assign", "application/json", body, strlen(body), &r),
            0);
        assert_int_equal(r.status, 200);
        doc = json_loads(r.body, 0, NULL);
        http_response_free(&r);
        list = json_object_get(doc, "assignments");
        assert_int_equal(json_array_size(list), 70);
        for (int k = 0; k < 70; k++) {
            char path[256];
            snprintf(path, sizeof(path), "/v1/assign?experiment=%s&unit=user-9&attr.country=FR",
                     KEYS[k % 6]);
            int st;
            json_t *one = get_json(path, &st);
            assert_true(json_equal(one, json_array_get(list, (size_t)k)));
            json_decref(one);
        }
        json_decref(doc);
    }
}

/* The assignment of experiment key in a POST answer. */
static const json_t *assignment(const json_t *doc, const char *key)
{
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(doc, "assignments"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "experiment")), key) == 0)
            return a;
    }
    fail_msg("no assignment for %s", key);
    return NULL;
}

/*
 * The usual body is read without jansson; one that spells the same with escapes goes through
 * jansson. Both must answer alike, and as the conditions say, for attributes of every scalar
 * type (and an id, which the unit overrides), hashed by a number too, for many units, for all
 * running experiments and for a list.
 */
static void test_post_read_two_ways(void **state)
{
    (void)state;
    struct ab_snapshot *s = make_snapshot(1, 0.3);
    static const char *const TARGETED[][2] = {
        {"by-set", "{\"country\":{\"$in\":[\"FR\",\"DE\"]}}"},
        {"by-age", "{\"age\":{\"$gte\":40}}"},
        {"by-score", "{\"score\":{\"$lt\":50}}"},
        {"by-pro", "{\"pro\":true}"},
        {"by-gone", "{\"gone\":{\"$exists\":false},\"id\":{\"$ne\":\"x\"}}"},
        /* the same condition as by-age (evaluated once per unit), and nearly the same */
        {"by-age-again", "{\"age\":{\"$gte\":40}}"},
        {"by-age-41", "{\"age\":{\"$gte\":41}}"},
        {"by-age-or-set", "{\"age\":{\"$gte\":40},\"country\":{\"$in\":[\"FR\",\"DE\"]}}"},
    };
    double half[2] = {0.5, 0.5};
    for (size_t t = 0; t < sizeof(TARGETED) / sizeof(TARGETED[0]); t++) {
        add_experiment(s, TARGETED[t][0], 1, 1, half, 2);
        s->experiments[s->nexperiments - 1].condition = json_loads(TARGETED[t][1], 0, NULL);
    }
    const char *HASHED[] = {"age", "score"}; /* numbers hashed as JavaScript prints them */
    for (size_t h = 0; h < 2; h++) {
        char key[32];
        snprintf(key, sizeof(key), "hash-%s", HASHED[h]);
        add_experiment(s, key, 1, 1, half, 2);
        free(s->experiments[s->nexperiments - 1].hash_attribute);
        s->experiments[s->nexperiments - 1].hash_attribute = strdup(HASHED[h]);
    }
    struct ab_errinfo ei;
    if (ab_snapshot_write(s, g_file, &ei) != AB_OK)
        fail_msg("cannot write snapshot: %s", ei.message);
    ab_snapshot_free(s);
    start_node();
    assert_true(wait_ready(200));
    static const char *const COUNTRIES[] = {"FR", "DE", "US"};
    int hashed_numbers[2] = {0, 0};
    for (int u = 0; u < 150; u++) {
        const char *c = COUNTRIES[u % 3];
        const char *list = u % 2 ? "" : ",\"experiments\":[\"by-set\",\"by-age\",\"weights\"]";
        int age = 18 + u % 50, pro = u % 4 != 0;
        char plain[512], escaped[512];
        snprintf(plain, sizeof(plain),
                 "{\"unit\":\"user-%d\",\"attributes\":{\"country\":\"%s\",\"id\":\"x\","
                 "\"age\":%d,\"score\":%d.25,\"pro\":%s,\"gone\":null}%s}",
                 u, c, age, u, pro ? "true" : "false", list);
        snprintf(escaped, sizeof(escaped),
                 "{\"unit\":\"user-%d\",\"attributes\":{\"country\":\"\\u00%02x%c\",\"id\":\"x\","
                 "\"age\":%d,\"score\":%d.25,\"pro\":%s,\"gone\":null}%s}",
                 u, c[0], c[1], age, u, pro ? "true" : "false", list);
        json_t *a = post_json(plain), *b = post_json(escaped);
        if (!json_equal(a, b))
            fail_msg("%s and %s answer differently", plain, escaped);
        const int want[] = {u % 3 != 2, age >= 40, u < 50,    pro,
                            1,          age >= 40, age >= 41, age >= 40 && u % 3 != 2};
        size_t n = list[0] != '\0' ? 2 : sizeof(want) / sizeof(want[0]);
        for (size_t t = 0; t < n; t++) {
            const json_t *x = assignment(a, TARGETED[t][0]);
            if (json_is_true(json_object_get(x, "in_experiment")) != want[t])
                fail_msg("%s: %s gives in_experiment %d", plain, TARGETED[t][0], !want[t]);
        }
        for (size_t h = 0; h < 2 && list[0] == '\0'; h++)
            hashed_numbers[h] += json_is_true(json_object_get(
                assignment(a, h == 0 ? "hash-age" : "hash-score"), "in_experiment"));
        json_decref(a);
        json_decref(b);
    }
    /* units are hashed by their age and score (numbers, never 0): all in */
    assert_int_equal(hashed_numbers[0], 75);
    assert_int_equal(hashed_numbers[1], 75);
}

static void test_readiness_reload_and_rejections(void **state)
{
    (void)state;
    start_node(); /* no file yet */
    int st;
    json_t *d = get_json("/readyz", &st);
    assert_int_equal(st, 503);
    json_decref(d);
    d = get_json("/v1/assign?experiment=weights&unit=u1", &st);
    assert_int_equal(st, 503);
    json_decref(d);
    write_snapshot(1, 0.3);
    assert_true(wait_ready(200));
    assert_int_equal(served_version(), 1);
    /* a newer version is picked up */
    write_snapshot(2, 0.6);
    int v = 0;
    for (int i = 0; i < 200 && (v = (int)served_version()) != 2; i++)
        sleep_ms(50);
    assert_int_equal(v, 2);
    /* an older version, then a file that is not SQLite: both refused, v2 still served */
    write_snapshot(1, 0.3);
    assert_true(wait_metric("abacus_snapshot_rejected_total{reason=\"older_version\"} 1\n"));
    assert_int_equal(served_version(), 2);
    FILE *fp = fopen(g_file, "wb");
    fputs("not a snapshot", fp);
    fclose(fp);
    assert_true(wait_metric("abacus_snapshot_rejected_total{reason=\"io\"} 1\n"));
    assert_int_equal(served_version(), 2);
    struct http_response r;
    http_do(g_node.port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_non_null(strstr(r.body, "abacus_snapshot_version 2\n"));
    assert_non_null(strstr(r.body, "abacus_snapshot_age_seconds "));
    assert_non_null(strstr(r.body, "route=\"/v1/assign\""));
    http_response_free(&r);
}

static void test_sdk_endpoints(void **state)
{
    (void)state;
    write_snapshot(3, 0.3);
    start_node();
    assert_true(wait_ready(200));
    int st;
    json_t *d = get_json("/api/features/wrong-key", &st);
    assert_int_equal(st, 401);
    assert_string_equal(error_field(d), "clientKey");
    json_decref(d);
    struct http_response r;
    assert_int_equal(http_do(g_node.port, "GET", "/api/features/sdk-test-key", NULL, NULL, 0, &r),
                     0);
    assert_int_equal(r.status, 200);
    char etag[64];
    assert_non_null(http_header(&r, "etag", etag, sizeof(etag)));
    assert_string_equal(etag, "\"v3\"");
    json_t *payload = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    json_t *features = json_object_get(payload, "features");
    assert_int_equal(json_object_size(features), 6);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(features, "weights"), "defaultValue")),
        "control");
    json_decref(payload);
    char req[256];
    snprintf(req, sizeof(req),
             "GET /api/features/sdk-test-key HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n"
             "Connection: close\r\n\r\n",
             etag);
    assert_int_equal(http_raw(g_node.port, req, strlen(req), &r), 0);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    http_response_free(&r);
    /* remote evaluation agrees with /v1/assign */
    const char *b = "{\"attributes\":{\"id\":\"user-9\",\"country\":\"FR\"}}";
    assert_int_equal(http_do(g_node.port, "POST", "/api/eval/sdk-test-key", "application/json", b,
                             strlen(b), &r),
                     0);
    assert_int_equal(r.status, 200);
    json_t *ev = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    const char *key;
    json_t *f;
    json_object_foreach(json_object_get(ev, "features"), key, f)
    {
        char path[256];
        snprintf(path, sizeof(path), "/v1/assign?experiment=%s&unit=user-9&attr.country=FR", key);
        json_t *one = get_json(path, &st);
        assert_string_equal(json_string_value(json_object_get(f, "defaultValue")),
                            json_string_value(json_object_get(one, "variant")));
        json_decref(one);
    }
    json_decref(ev);
}

static void test_up_mounts_the_assign_node(void **state)
{
    (void)state;
    write_snapshot(5, 0.3);
    char data[600];
    snprintf(data, sizeof(data), "%s/data", g_node.dir);
    const char *args[] = {"up", "--data-dir", data, "--threads", "2", "--snapshot-file", g_file,
                          NULL};
    assert_int_equal(abacus_spawn(&g_node, args), 0);
    assert_true(wait_ready(200));
    assert_int_equal(served_version(), 5);
    int st;
    json_t *d = get_json("/healthz", &st);
    assert_int_equal(st, 200);
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_match_the_core, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_all_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_read_two_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readiness_reload_and_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sdk_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_up_mounts_the_assign_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
