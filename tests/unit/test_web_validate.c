/*
 * Unit tests of web/validate.c, the pure validation core of the admin API: normalized output
 * (defaults filled), and each refusal naming its field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "web_int.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    if (doc == NULL)
        fail_msg("bad test JSON: %s", err.text);
    return doc;
}

static void expect_field(enum ab_err (*fn)(const json_t *, json_t **, struct ab_errinfo *),
                         const char *body, const char *field)
{
    json_t *in = parse(body), *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = fn(in, &out, &ei);
    if (rc != AB_ERR_INVALID_FIELD || strcmp(ei.field, field) != 0)
        fail_msg("%s: rc %d field '%s' (%s), want field '%s'", body, rc, ei.field, ei.message,
                 field);
    assert_null(out);
    assert_true(ei.message[0] != '\0');
    json_decref(in);
}

static void test_experiment_defaults(void **state)
{
    (void)state;
    json_t *in = parse("{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"},"
                       "{\"key\":\"c\"}]}");
    json_t *out = NULL;
    assert_int_equal(web_validate_experiment(in, &out, NULL), AB_OK);
    assert_string_equal(json_string_value(json_object_get(out, "hash_attribute")), "id");
    assert_string_equal(json_string_value(json_object_get(out, "seed")), "k");
    assert_int_equal(json_integer_value(json_object_get(out, "hash_version")), 2);
    assert_true(json_real_value(json_object_get(out, "coverage")) == 1.0);
    assert_true(json_is_null(json_object_get(out, "condition")));
    assert_true(json_is_null(json_object_get(out, "layer")));
    assert_true(json_is_null(json_object_get(out, "fallback_attribute")));
    assert_int_equal(json_object_size(json_object_get(out, "overrides")), 0);
    json_t *vars = json_object_get(out, "variants");
    double sum = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_array_get(vars, i);
        sum += json_real_value(json_object_get(v, "weight"));
        assert_true(json_is_object(json_object_get(v, "payload")));
    }
    assert_true(sum > 1 - 1e-9 && sum < 1 + 1e-9);
    json_decref(out);
    json_decref(in);
}

static void test_experiment_full(void **state)
{
    (void)state;
    json_t *in = parse(
        "{\"key\":\"checkout-button\",\"name\":\"N\",\"description\":\"D\",\"hash_attribute\":"
        "\"user\",\"fallback_attribute\":\"device\",\"hash_version\":1,\"seed\":\"s\","
        "\"coverage\":0.25,\"variants\":[{\"key\":\"control\",\"weight\":0.5,\"payload\":{}},"
        "{\"key\":\"treatment\",\"weight\":0.5,\"payload\":{\"color\":\"green\"}}],"
        "\"condition\":{\"$and\":[{\"country\":{\"$in\":[\"FR\"]}},{\"age\":{\"$gte\":18}}],"
        "\"plan\":\"pro\",\"tags\":{\"$elemMatch\":{\"$eq\":\"beta\"}}},"
        "\"layer\":{\"key\":\"checkout\",\"range\":[0,0.5]},\"overrides\":{\"unit-42\":"
        "\"treatment\"},\"metrics\":[{\"key\":\"purchase\",\"role\":\"guardrail\"}],"
        "\"planned_sample_size\":1000}");
    json_t *out = NULL;
    assert_int_equal(web_validate_experiment(in, &out, NULL), AB_OK);
    assert_string_equal(json_string_value(json_object_get(out, "fallback_attribute")), "device");
    assert_int_equal(json_integer_value(json_object_get(out, "planned_sample_size")), 1000);
    assert_true(json_equal(json_object_get(out, "condition"), json_object_get(in, "condition")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(out, "metrics"), 0), "role")),
                        "guardrail");
    json_decref(out);
    json_decref(in);
}

static void test_experiment_refusals(void **state)
{
    (void)state;
    enum ab_err (*v)(const json_t *, json_t **, struct ab_errinfo *) = web_validate_experiment;
    expect_field(v, "[]", "body");
    expect_field(v, "{\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}]}", "key");
    expect_field(v, "{\"key\":\"\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}]}", "key");
    expect_field(v, "{\"key\":\"a\\nb\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}]}", "key");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"}]}", "variants");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\",\"weight\":0.3},"
                    "{\"key\":\"b\",\"weight\":0.3}]}",
                 "variants");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\",\"weight\":1},{\"key\":\"b\"}]}",
                 "variants");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\",\"weight\":\"1\"},"
                    "{\"key\":\"b\",\"weight\":0}]}",
                 "variants[0].weight");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"a\"}]}",
                 "variants[1].key");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\",\"x\":1}]}",
                 "variants[1].x");
    expect_field(v, "{\"\":\"k\",\"variants\":[{\"key\":\"b\"},{\"key\":\"c\"}]}",
                 "\"\""); /* found by fuzz_admin: an empty name still names a field */
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"hash_version\":3}",
                 "hash_version");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"coverage\":-0.1}",
                 "coverage");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"layer\":{\"key\":\"l\",\"range\":[0.5,0.5]}}",
                 "layer.range");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"layer\":{\"range\":[0,0.5]}}",
                 "layer.key");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"overrides\":{\"u\":\"c\"}}",
                 "overrides.u");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"metrics\":[{\"key\":\"m\"},{\"key\":\"m\"}]}",
                 "metrics[1].key");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"metrics\":[{\"key\":\"m\",\"role\":\"boss\"}]}",
                 "metrics[0].role");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"planned_sample_size\":0}",
                 "planned_sample_size");
    expect_field(v, "{\"key\":\"k\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                    "\"version\":3}",
                 "version");
}

static void test_conditions(void **state)
{
    (void)state;
    static const char *const OK[] = {
        "{}", "{\"a\":1}", "{\"a\":{\"b\":1}}", "{\"a.b\":{\"$exists\":false}}",
        "{\"$not\":{\"a\":{\"$regex\":\"^x\"}}}", "{\"$nor\":[{\"a\":null}]}",
        "{\"v\":{\"$vgte\":\"1.2.3\"}}", "{\"a\":{\"$size\":{\"$gt\":2}}}",
        "{\"a\":{\"$all\":[1,{\"$lt\":3}]}}", "{\"a\":{\"$elemMatch\":{\"x\":1}}}",
        "{\"a\":{\"$type\":\"string\",\"$ne\":\"\"}}"};
    for (size_t i = 0; i < sizeof(OK) / sizeof(OK[0]); i++) {
        json_t *c = parse(OK[i]);
        struct ab_errinfo ei;
        if (web_validate_condition(c, "condition", &ei) != AB_OK)
            fail_msg("%s refused: %s %s", OK[i], ei.field, ei.message);
        json_decref(c);
    }
    static const char *const BAD[][2] = {
        {"[]", "condition"},
        {"{\"$or\":{}}", "condition.$or"},
        {"{\"$and\":[1]}", "condition.$and[0]"},
        {"{\"$where\":\"1\"}", "condition.$where"},
        {"{\"a\":{\"$foo\":1}}", "condition.a.$foo"},
        {"{\"a\":{\"$in\":1}}", "condition.a.$in"},
        {"{\"a\":{\"$exists\":1}}", "condition.a.$exists"},
        {"{\"a\":{\"$regex\":1}}", "condition.a.$regex"},
        {"{\"a\":{\"$lt\":[1]}}", "condition.a.$lt"},
        {"{\"a\":{\"$vgt\":1}}", "condition.a.$vgt"},
        {"{\"a\":{\"$elemMatch\":1}}", "condition.a.$elemMatch"},
        {"{\"$not\":{\"a\":{\"$not\":{\"$bad\":1}}}}", "condition.$not.a.$not.$bad"},
        {"{\"\":1}", "condition."},
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        json_t *c = parse(BAD[i][0]);
        struct ab_errinfo ei;
        enum ab_err rc = web_validate_condition(c, "condition", &ei);
        if (rc != AB_ERR_INVALID_FIELD || strcmp(ei.field, BAD[i][1]) != 0)
            fail_msg("%s: rc %d field %s, want %s", BAD[i][0], rc, ei.field, BAD[i][1]);
        json_decref(c);
    }
    /* nesting beyond the limit */
    char deep[2048] = "";
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"$not\":");
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{}");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}");
    json_t *c = parse(deep);
    assert_int_equal(web_validate_condition(c, "condition", NULL), AB_ERR_INVALID_FIELD);
    json_decref(c);
}

static void test_metrics_layers_keys(void **state)
{
    (void)state;
    json_t *in = parse("{\"key\":\"rev\",\"type\":\"ratio\",\"event\":\"revenue\","
                       "\"denominator_event\":\"session\",\"direction\":\"decrease\","
                       "\"conversion_window_hours\":72}");
    json_t *out = NULL;
    assert_int_equal(web_validate_metric(in, &out, NULL), AB_OK);
    assert_string_equal(json_string_value(json_object_get(out, "name")), "");
    assert_true(json_real_value(json_object_get(out, "conversion_window_hours")) == 72.0);
    json_decref(out);
    json_decref(in);
    enum ab_err (*m)(const json_t *, json_t **, struct ab_errinfo *) = web_validate_metric;
    expect_field(m, "{\"key\":\"k\",\"type\":\"sum\",\"event\":\"e\"}", "type");
    expect_field(m, "{\"key\":\"k\",\"type\":\"mean\"}", "event");
    expect_field(m, "{\"key\":\"k\",\"type\":\"mean\",\"event\":\"e\",\"denominator_event\":"
                    "\"d\"}",
                 "denominator_event");
    expect_field(m, "{\"key\":\"k\",\"type\":\"mean\",\"event\":\"e\",\"direction\":\"up\"}",
                 "direction");
    expect_field(m, "{\"key\":\"k\",\"type\":\"mean\",\"event\":\"e\","
                    "\"conversion_window_hours\":0}",
                 "conversion_window_hours");
    expect_field(web_validate_layer, "{\"key\":\"l\",\"owner\":\"x\"}", "owner");
    expect_field(web_validate_layer, "{\"name\":\"l\"}", "key");
    assert_int_equal(web_validate_key_request(NULL, &out, NULL), AB_OK);
    assert_string_equal(json_string_value(json_object_get(out, "name")), "");
    json_decref(out);
    expect_field(web_validate_key_request, "{\"name\":1}", "name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_experiment_defaults),   cmocka_unit_test(test_experiment_full),
        cmocka_unit_test(test_experiment_refusals),   cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_metrics_layers_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
