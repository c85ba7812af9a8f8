/*
 * Unit tests of the collector's pure core (collect/parse.c): event JSON, NDJSON and Segment
 * batches in, valid events and rejections (code, field, raw bytes) out, whole-request refusals,
 * timestamps and skew correction. Time is pinned; the snapshot is built in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "collect_int.h"

#define NOW 1795524362123LL /* 2026-11-24T12:46:02.123Z */

static struct ab_snapshot *g_snap;

static struct ab_snapshot *make_snapshot(void)
{
    struct ab_snapshot *s = calloc(1, sizeof(*s));
    s->version = 3;
    s->nexperiments = 2;
    s->experiments = calloc(2, sizeof(*s->experiments));
    const char *keys[] = {"banner", "checkout"}; /* sorted, as the reader returns them */
    for (int i = 0; i < 2; i++) {
        struct ab_snapshot_experiment *e = &s->experiments[i];
        e->key = strdup(keys[i]);
        e->hash_attribute = strdup("id");
        e->seed = strdup(keys[i]);
        e->nvariants = 2;
        e->variants = calloc(2, sizeof(*e->variants));
        e->variants[0].key = strdup("control");
        e->variants[1].key = strdup("treatment");
    }
    return s;
}

static int setup(void **state)
{
    (void)state;
    g_snap = make_snapshot();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ab_snapshot_free(g_snap);
    return 0;
}

static struct collect_batch *parse_ok(const char *body, enum collect_format f)
{
    struct collect_batch *b = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = collect_parse(body, strlen(body), f, g_snap, NOW, &b, &ei);
    if (rc != AB_OK)
        fail_msg("refused: %s (%s)", ei.message, ei.field);
    return b;
}

/* Parses a one-event body and returns its single rejection (fails if it was accepted). */
static void expect_rejected(const char *event, const char *code, const char *field)
{
    char body[4096];
    snprintf(body, sizeof(body), "{\"events\":[%s]}", event);
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    if (b->nrejected != 1)
        fail_msg("%s: %zu rejections, want 1", event, b->nrejected);
    assert_int_equal(b->nevents, 0);
    assert_string_equal(collect_code_name(b->rejected[0].code), code);
    assert_string_equal(b->rejected[0].field, field);
    assert_true(b->rejected[0].message[0] != '\0');
    collect_batch_free(b);
}

static void test_valid_events(void **state)
{
    (void)state;
    struct collect_batch *b = parse_ok(
        "{\"events\":[{\"id\":\"e1\",\"type\":\"exposure\",\"ts\":1795524000000,\"unit\":\"u1\","
        "\"experiment\":\"checkout\",\"variant\":\"treatment\",\"attributes\":{\"plan\":\"pro\"}},"
        "{\"id\":\"e2\",\"type\":\"metric\",\"ts\":\"2026-01-02T03:04:05.678Z\",\"unit\":\"u1\","
        "\"metric\":\"purchase\",\"value\":12.5},"
        "{\"id\":\"e3\",\"type\":\"metric\",\"ts\":0,\"unit\":\"u2\",\"metric\":\"visit\"}]}",
        COLLECT_FORMAT_JSON);
    assert_int_equal(b->total, 3);
    assert_int_equal(b->nevents, 3);
    assert_int_equal(b->nrejected, 0);
    const struct collect_event *e = &b->events[0];
    assert_int_equal(e->type, COLLECT_EXPOSURE);
    assert_string_equal(e->id, "e1");
    assert_string_equal(e->experiment, "checkout");
    assert_string_equal(e->variant, "treatment");
    assert_string_equal(e->attributes, "{\"plan\":\"pro\"}");
    assert_int_equal(e->client_ts, 1795524000000LL);
    assert_int_equal(e->ts, 1795524000000LL);
    assert_int_equal(b->events[1].client_ts, 1767323045678LL);
    assert_true(b->events[1].value == 12.5);
    assert_string_equal(b->events[1].metric, "purchase");
    assert_null(b->events[1].experiment);
    assert_true(b->events[2].value == 1.0); /* the default */
    assert_int_equal(b->events[2].index, 2);
    assert_true(b->events[0].id_hash == collect_hash64("e1", 2));
    collect_batch_free(b);
}

static void test_rejections(void **state)
{
    (void)state;
    expect_rejected("{\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}",
                    "missing_field", "events[0].id");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"unit\":\"u\",\"metric\":\"m\"}",
                    "missing_field", "events[0].ts");
    expect_rejected("{\"id\":\"a\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
                    "\"experiment\":\"checkout\"}",
                    "missing_field", "events[0].variant");
    expect_rejected("{\"id\":\"\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}",
                    "invalid_value", "events[0].id");
    expect_rejected("{\"id\":\"a\",\"type\":\"click\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}",
                    "invalid_value", "events[0].type");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":1.5,\"unit\":\"u\",\"metric\":\"m\"}",
                    "wrong_type", "events[0].ts");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":-1,\"unit\":\"u\",\"metric\":\"m\"}",
                    "invalid_value", "events[0].ts");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":\"2025-02-29T00:00:00Z\","
                    "\"unit\":\"u\",\"metric\":\"m\"}",
                    "invalid_value", "events[0].ts");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":[],\"metric\":\"m\"}",
                    "wrong_type", "events[0].unit");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\","
                    "\"attributes\":[1]}",
                    "wrong_type", "events[0].attributes");
    expect_rejected("{\"id\":\"a\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
                    "\"experiment\":\"gone\",\"variant\":\"control\"}",
                    "unknown_experiment", "events[0].experiment");
    expect_rejected("{\"id\":\"a\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
                    "\"experiment\":\"banner\",\"variant\":\"green\"}",
                    "unknown_variant", "events[0].variant");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\","
                    "\"attributes\":{\"k\":[\"x\",\"a\\u0000\"]}}",
                    "nul_in_string", "events[0].attributes.k[1]");
    expect_rejected("{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\","
                    "\"extra\":true}",
                    "unknown_field", "events[0].extra");
    expect_rejected("\"just a string\"", "wrong_type", "events[0]");
    char future[256];
    snprintf(future, sizeof(future),
             "{\"id\":\"a\",\"type\":\"metric\",\"ts\":%lld,\"unit\":\"u\",\"metric\":\"m\"}",
             NOW + COLLECT_FUTURE_MS + 1);
    expect_rejected(future, "ts_in_future", "events[0].ts");
}

static void test_truncated_text_stays_utf8(void **state)
{
    (void)state;
    /* a 149-byte key, 'a' then 2-byte characters: the message keeps 100 bytes of it and the
     * field path 128 bytes of an unknown field's name, neither may end in half a character */
    char key[160] = "a", body[1024];
    for (int i = 0; i < 74; i++)
        memcpy(key + 1 + 2 * i, "\xc3\xa9", 3);
    snprintf(body, sizeof(body),
             "{\"events\":[{\"id\":\"a\",\"type\":\"exposure\",\"ts\":1,\"unit\":\"u\","
             "\"experiment\":\"%s\",\"variant\":\"v\"},{\"id\":\"b\",\"type\":\"metric\","
             "\"ts\":1,\"unit\":\"u\",\"metric\":\"m\",\"x%s\":1}]}",
             key, key);
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nrejected, 2);
    for (int i = 0; i < 2; i++) {
        const struct collect_rejection *r = &b->rejected[i];
        json_t *m = json_string(r->message), *f = json_string(r->field);
        assert_non_null(m); /* jansson refuses invalid UTF-8 */
        assert_non_null(f);
        json_decref(m);
        json_decref(f);
    }
    assert_string_equal(collect_code_name(b->rejected[1].code), "unknown_field");
    collect_batch_free(b);
}

static void test_skew_correction(void **state)
{
    (void)state;
    char body[512];
    /* the client's clock is 2 hours ahead: ts and sent_at both carry the lead */
    snprintf(body, sizeof(body),
             "{\"events\":[{\"id\":\"a\",\"type\":\"metric\",\"ts\":%lld,\"sent_at\":%lld,"
             "\"unit\":\"u\",\"metric\":\"m\"}]}",
             NOW + 7200000 - 5000, NOW + 7200000);
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nevents, 1);
    assert_int_equal(b->events[0].ts, NOW - 5000);
    assert_int_equal(b->events[0].client_ts, NOW + 7200000 - 5000);
    assert_true(b->events[0].has_sent_at);
    collect_batch_free(b);
}

static void test_invalid_utf8_rejects_one_event(void **state)
{
    (void)state;
    const char *body = "{\"events\":[{\"id\":\"ok1\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\","
                       "\"metric\":\"m\"}, {\"id\":\"bad\",\"type\":\"metric\",\"ts\":1,\"unit\":"
                       "\"\xff\xfe\",\"metric\":\"m\"} ,{\"id\":\"ok2\",\"type\":\"metric\","
                       "\"ts\":1,\"unit\":\"\xe2\x82\xac\",\"metric\":\"m\"}]}";
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nevents, 2);
    assert_string_equal(b->events[1].unit, "\xe2\x82\xac");
    assert_int_equal(b->nrejected, 1);
    const struct collect_rejection *r = &b->rejected[0];
    assert_int_equal(r->index, 1);
    assert_string_equal(collect_code_name(r->code), "invalid_utf8");
    /* raw is exactly the element's bytes, as received */
    const char *want = "{\"id\":\"bad\",\"type\":\"metric\",\"ts\":1,\"unit\":\"\xff\xfe\","
                       "\"metric\":\"m\"}";
    assert_int_equal(r->raw_len, strlen(want));
    assert_memory_equal(r->raw, want, r->raw_len);
    collect_batch_free(b);
}

static void test_event_too_large(void **state)
{
    (void)state;
    size_t pad = COLLECT_EVENT_MAX;
    char *body = malloc(pad + 256);
    int n = snprintf(body, 256,
                     "{\"events\":[{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\","
                     "\"metric\":\"m\",\"attributes\":{\"p\":\"");
    memset(body + n, 'x', pad);
    snprintf(body + n + pad, 64, "\"}},{\"id\":\"b\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\","
                                 "\"metric\":\"m\"}]}");
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nevents, 1);
    assert_string_equal(b->events[0].id, "b");
    assert_int_equal(b->nrejected, 1);
    assert_string_equal(collect_code_name(b->rejected[0].code), "event_too_large");
    collect_batch_free(b);
    free(body);
}

static void expect_refused(const char *body, size_t len, enum collect_format f, enum ab_err want,
                           const char *field, const char *in_message)
{
    struct collect_batch *b = (void *)1;
    struct ab_errinfo ei;
    enum ab_err rc = collect_parse(body, len, f, g_snap, NOW, &b, &ei);
    if (rc != want)
        fail_msg("rc %d (%s), want %d", rc, ei.message, want);
    assert_null(b);
    assert_string_equal(ei.field, field);
    if (in_message != NULL && strstr(ei.message, in_message) == NULL)
        fail_msg("message '%s' lacks '%s'", ei.message, in_message);
}

static void test_whole_request_refusals(void **state)
{
    (void)state;
    const char *bad = "{\"events\":[{\"id\":1,}]}";
    expect_refused(bad, strlen(bad), COLLECT_FORMAT_JSON, AB_ERR_INVALID_JSON, "body",
                   "line 1, column 20");
    expect_refused("[]", 2, COLLECT_FORMAT_JSON, AB_ERR_INVALID_FIELD, "events", NULL);
    expect_refused("{\"events\":{}}", 13, COLLECT_FORMAT_JSON, AB_ERR_INVALID_FIELD, "events",
                   NULL);
    expect_refused("{\"batch\":[]}", 12, COLLECT_FORMAT_JSON, AB_ERR_INVALID_FIELD, "events",
                   NULL);
    expect_refused("{\"events\":[],\"events\":[]}", 25, COLLECT_FORMAT_JSON, AB_ERR_INVALID_JSON,
                   "body", "duplicate");
    char deep[256] = "{\"events\":";
    size_t n = strlen(deep);
    for (int i = 0; i < COLLECT_DEPTH_MAX; i++)
        deep[n++] = '[';
    for (int i = 0; i < COLLECT_DEPTH_MAX; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    expect_refused(deep, n, COLLECT_FORMAT_JSON, AB_ERR_INVALID_JSON, "body", "deeper");
    size_t cap = (size_t)(COLLECT_EVENTS_MAX + 1) * 3 + 32;
    char *many = malloc(cap);
    size_t len = (size_t)snprintf(many, cap, "{\"events\":[");
    for (int i = 0; i <= COLLECT_EVENTS_MAX; i++)
        len += (size_t)snprintf(many + len, cap - len, "%s{}", i ? "," : "");
    len += (size_t)snprintf(many + len, cap - len, "]}");
    expect_refused(many, len, COLLECT_FORMAT_JSON, AB_ERR_INVALID_FIELD, "events", "501");
    /* exactly the limit is fine: 500 rejections (each {} lacks its fields) */
    len = (size_t)snprintf(many, cap, "{\"events\":[");
    for (int i = 0; i < COLLECT_EVENTS_MAX; i++)
        len += (size_t)snprintf(many + len, cap - len, "%s{}", i ? "," : "");
    len += (size_t)snprintf(many + len, cap - len, "]}");
    struct collect_batch *b = parse_ok(many, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nrejected, COLLECT_EVENTS_MAX);
    assert_string_equal(b->rejected[499].field, "events[499].id");
    collect_batch_free(b);
    free(many);
    char *big = malloc(COLLECT_BODY_MAX + 1);
    memset(big, ' ', COLLECT_BODY_MAX + 1);
    expect_refused(big, COLLECT_BODY_MAX + 1, COLLECT_FORMAT_JSON, AB_ERR_TOO_LARGE, "body",
                   NULL);
    free(big);
}

static void test_ndjson(void **state)
{
    (void)state;
    const char *body = "\n{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\"}\r\n"
                       "   \n"
                       "{\"id\":\"b\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\"}\n"
                       "{\"id\":\"c\",\"type\":\"metric\",\"ts\":2,\"unit\":\"u\",\"metric\":\"m\"}";
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_NDJSON);
    assert_int_equal(b->total, 3);
    assert_int_equal(b->nevents, 2);
    assert_string_equal(b->events[1].id, "c");
    assert_int_equal(b->events[1].index, 2);
    assert_int_equal(b->nrejected, 1);
    assert_string_equal(b->rejected[0].field, "events[1].metric");
    collect_batch_free(b);
    const char *broken = "{\"id\":\"a\"}\n\n{\"id\":\n";
    expect_refused(broken, strlen(broken), COLLECT_FORMAT_NDJSON, AB_ERR_INVALID_JSON, "body",
                   "line 3");
    expect_refused("\n \n", 3, COLLECT_FORMAT_NDJSON, AB_ERR_INVALID_FIELD, "body", NULL);
}

static void test_segment(void **state)
{
    (void)state;
    const char *body =
        "{\"batch\":["
        "{\"type\":\"track\",\"messageId\":\"m1\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
        "\"event\":\"Experiment Viewed\",\"properties\":{\"experiment_id\":\"checkout\","
        "\"variation_id\":1},\"timestamp\":\"2026-11-24T12:46:00.000Z\"},"
        "{\"type\":\"track\",\"messageId\":\"m2\",\"anonymousId\":\"a1\",\"event\":\"Order "
        "Completed\",\"properties\":{\"revenue\":30,\"value\":7},"
        "\"timestamp\":\"2026-11-24T12:46:00.000Z\",\"context\":{\"library\":{}}},"
        "{\"type\":\"track\",\"messageId\":\"m3\",\"userId\":\"u1\",\"event\":\"Signup\","
        "\"properties\":{\"revenue\":4.5},\"timestamp\":\"2026-11-24T12:46:00.000Z\"},"
        "{\"type\":\"track\",\"messageId\":\"m4\",\"userId\":\"u1\",\"event\":\"Experiment Viewed\","
        "\"properties\":{\"experimentId\":\"banner\",\"variationId\":\"control\"},"
        "\"timestamp\":\"2026-11-24T12:46:00.000Z\"},"
        "{\"type\":\"track\",\"messageId\":\"m5\",\"userId\":\"u1\",\"event\":\"Experiment Viewed\","
        "\"properties\":{\"experiment_id\":\"checkout\",\"variation_id\":2},"
        "\"timestamp\":\"2026-11-24T12:46:00.000Z\"},"
        "{\"type\":\"page\",\"messageId\":\"m6\",\"userId\":\"u1\"},"
        "{\"type\":\"track\",\"messageId\":\"m7\",\"event\":\"X\","
        "\"timestamp\":\"2026-11-24T12:46:00.000Z\"}"
        "],\"sentAt\":\"2026-11-24T12:46:01.000Z\"}";
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_SEGMENT);
    /* the batch outlives the snapshot it was checked with (a reload may free it meanwhile) */
    ab_snapshot_free(g_snap);
    g_snap = make_snapshot();
    assert_int_equal(b->nevents, 4);
    assert_int_equal(b->events[0].type, COLLECT_EXPOSURE);
    assert_string_equal(b->events[0].unit, "u1"); /* userId before anonymousId */
    assert_string_equal(b->events[0].variant, "treatment"); /* variation index 1 */
    /* batch-level sentAt corrects skew: sent 1 s after the event, received at NOW */
    assert_int_equal(b->events[0].ts, NOW - 1000);
    assert_int_equal(b->events[1].type, COLLECT_METRIC);
    assert_string_equal(b->events[1].metric, "Order Completed");
    assert_true(b->events[1].value == 7);   /* value before revenue */
    assert_true(b->events[2].value == 4.5); /* else revenue */
    assert_string_equal(b->events[3].experiment, "banner");
    assert_int_equal(b->nrejected, 3);
    assert_string_equal(collect_code_name(b->rejected[0].code), "unknown_variant");
    assert_string_equal(b->rejected[0].field, "batch[4].properties.variation_id");
    assert_string_equal(collect_code_name(b->rejected[1].code), "unsupported_type");
    assert_string_equal(b->rejected[2].field, "batch[6].userId");
    collect_batch_free(b);
}

static void test_fingerprint(void **state)
{
    (void)state;
    const char *body =
        "{\"events\":[{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\","
        "\"value\":2,\"sent_at\":5},"
        "{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\",\"value\":2,"
        "\"sent_at\":9},"
        "{\"id\":\"a\",\"type\":\"metric\",\"ts\":1,\"unit\":\"u\",\"metric\":\"m\",\"value\":3}]}";
    struct collect_batch *b = parse_ok(body, COLLECT_FORMAT_JSON);
    assert_int_equal(b->nevents, 3);
    /* a retry (only sent_at differs) has the same fingerprint; another value does not */
    assert_true(b->events[0].fingerprint == b->events[1].fingerprint);
    assert_true(b->events[0].fingerprint != b->events[2].fingerprint);
    assert_true(b->events[0].id_hash == b->events[2].id_hash);
    collect_batch_free(b);
}

static void test_timestamps(void **state)
{
    (void)state;
    struct {
        const char *text;
        long long ms; /* -1: invalid */
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-11-24T12:46:02.123Z", 1795524362123LL},
        {"2024-02-29T23:59:59.999Z", 1709251199999LL},
        {"2026-06-01T00:00:00+02:00", 1780264800000LL},
        {"2026-11-24t12:46:02.1234z", 1795524362123LL},
        {"2025-02-29T00:00:00Z", -1},
        {"2026-13-01T00:00:00Z", -1},
        {"2026-11-24 12:46:02Z", -1},
        {"2026-11-24T12:46:02", -1},
        {"2026-11-24T12:46:02.Z", -1},
        {"2026-11-24T12:46:02+0200", -1},
        {"2026-11-24T12:46:02Zjunk", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *v = json_string(cases[i].text);
        int64_t ms = 0;
        int rc = collect_parse_ts(v, &ms);
        json_decref(v);
        if (cases[i].ms < 0) {
            if (rc == 0)
                fail_msg("%s accepted", cases[i].text);
        } else if (rc != 0 || ms != cases[i].ms) {
            fail_msg("%s: rc %d ms %lld, want %lld", cases[i].text, rc, (long long)ms,
                     cases[i].ms);
        }
    }
    json_t *n = json_integer(1234);
    int64_t ms = 0;
    assert_int_equal(collect_parse_ts(n, &ms), 0);
    assert_int_equal(ms, 1234);
    json_decref(n);
    n = json_real(1.5);
    assert_int_equal(collect_parse_ts(n, &ms), -1);
    json_decref(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skew_correction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_text_stays_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_utf8_rejects_one_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whole_request_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamps, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
