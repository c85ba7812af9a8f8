/* Unit tests of lib/json.c: limits on size and depth, error positions, duplicate keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/json.h"

static enum ab_err parse(const char *s, const struct ab_json_limits *lim, json_t **out,
                         struct ab_errinfo *ei)
{
    return ab_json_parse(s, strlen(s), lim, out, ei);
}

static void test_parses_valid(void **state)
{
    (void)state;
    json_t *doc;
    struct ab_errinfo ei;
    assert_int_equal(parse("{\"a\":[1,2,{\"b\":\"x\"}]}", NULL, &doc, &ei), AB_OK);
    assert_int_equal(json_array_size(json_object_get(doc, "a")), 3);
    json_decref(doc);
    /* not NUL-terminated input: only len bytes are read */
    char buf[] = {'[', '1', ']', 'x'};
    assert_int_equal(ab_json_parse(buf, 3, NULL, &doc, &ei), AB_OK);
    json_decref(doc);
}

static void test_error_position(void **state)
{
    (void)state;
    json_t *doc = (json_t *)1;
    struct ab_errinfo ei;
    assert_int_equal(parse("{\"a\":1,\n \"b\": tru}", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_null(doc);
    assert_string_equal(ei.field, "body");
    assert_non_null(strstr(ei.message, "line 2, column"));
    assert_int_equal(parse("", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_int_equal(parse("{\"a\":1} trailing", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
}

static void test_size_limit(void **state)
{
    (void)state;
    struct ab_json_limits lim = {16, 8};
    json_t *doc;
    struct ab_errinfo ei;
    assert_int_equal(parse("[1,2,3,4,5,6,7]", &lim, &doc, &ei), AB_OK); /* 15 bytes */
    json_decref(doc);
    assert_int_equal(parse("[1,2,3,4,5,6,7,8]", &lim, &doc, &ei), AB_ERR_TOO_LARGE);
    assert_string_equal(ei.field, "body");
}

static void test_depth_limit(void **state)
{
    (void)state;
    struct ab_json_limits lim = {1 << 20, 3};
    json_t *doc;
    struct ab_errinfo ei;
    assert_int_equal(parse("{\"a\":{\"b\":[1]}}", &lim, &doc, &ei), AB_OK);
    json_decref(doc);
    assert_int_equal(parse("{\"a\":{\"b\":[[1]]}}", &lim, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_non_null(strstr(ei.message, "deeper than 3"));
    /* brackets inside strings, with escaped quotes, do not count */
    assert_int_equal(parse("{\"a\":\"[[[[\\\"[[[[\"}", &lim, &doc, &ei), AB_OK);
    json_decref(doc);
    /* a hostile document far deeper than jansson's own recursion limit is refused cheaply */
    size_t n = 100000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    assert_int_equal(ab_json_parse(deep, n, NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    free(deep);
    assert_int_equal(ab_json_depth("[]", 2, 5), 1);
    assert_int_equal(ab_json_depth("1", 1, 5), 0);
}

static void test_duplicates_nul_and_utf8(void **state)
{
    (void)state;
    json_t *doc;
    struct ab_errinfo ei;
    assert_int_equal(parse("{\"a\":1,\"a\":2}", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_int_equal(parse("[\"a\\u0000b\"]", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_int_equal(parse("[\"\xff\"]", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_valid),
        cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_duplicates_nul_and_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
