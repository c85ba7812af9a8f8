/* Unit tests of lib/url.c: percent-decoding and query parsing, and what each refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/url.h"

static enum ab_err parse(const char *s, struct ab_url_query *q, struct ab_errinfo *ei)
{
    static char scratch[4096 + 2 * AB_URL_MAX_PARAMS + 2]; /* ab_url_scratch_size(4096) */
    static struct ab_url_param params[AB_URL_MAX_PARAMS + 1];
    assert_true(strlen(s) <= 4096);
    q->params = params;
    q->cap = ab_url_param_bound(s, strlen(s));
    assert_true(q->cap <= AB_URL_MAX_PARAMS + 1);
    return ab_url_parse_query(s, strlen(s), scratch, q, ei);
}

static void test_decode(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    struct ab_errinfo ei;
    assert_int_equal(ab_url_decode("a%20b+c%2Fd", 11, 1, out, &n, &ei), AB_OK);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "a b c/d", 7);
    assert_int_equal(ab_url_decode("a+b", 3, 0, out, &n, &ei), AB_OK); /* paths keep '+' */
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(ab_url_decode("caf%C3%A9", 9, 1, out, &n, &ei), AB_OK);
    assert_memory_equal(out, "caf\xc3\xa9", 5);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    struct ab_errinfo ei;
    const char *bad[] = {"%", "%4", "%zz", "a%g1", "%00", "%C3", "%ff", "%C0%AF", "%ED%A0%80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ab_url_decode(bad[i], strlen(bad[i]), 1, out, &n, &ei),
                         AB_ERR_BAD_REQUEST);
    ab_url_decode("%00", 3, 1, out, &n, &ei);
    assert_non_null(strstr(ei.message, "NUL"));
    ab_url_decode("%ff", 3, 1, out, &n, &ei);
    assert_non_null(strstr(ei.message, "UTF-8"));
}

static void test_query(void **state)
{
    (void)state;
    struct ab_url_query q;
    struct ab_errinfo ei;
    assert_int_equal(parse("experiment=checkout&unit=u%2B1&attr.country=FR&&flag", &q, &ei),
                     AB_OK);
    assert_int_equal(q.count, 4);
    assert_string_equal(ab_url_query_get(&q, "experiment"), "checkout");
    assert_string_equal(ab_url_query_get(&q, "unit"), "u+1");
    assert_string_equal(ab_url_query_get(&q, "attr.country"), "FR");
    assert_string_equal(ab_url_query_get(&q, "flag"), "");
    assert_null(ab_url_query_get(&q, "missing"));
    assert_int_equal(parse("a=1&a=2", &q, &ei), AB_OK); /* first value wins */
    assert_string_equal(ab_url_query_get(&q, "a"), "1");
    assert_int_equal(parse("v=a=b", &q, &ei), AB_OK); /* '=' in a value */
    assert_string_equal(ab_url_query_get(&q, "v"), "a=b");
    assert_int_equal(parse("", &q, &ei), AB_OK);
    assert_int_equal(q.count, 0);
}

static void test_query_refuses(void **state)
{
    (void)state;
    struct ab_url_query q;
    struct ab_errinfo ei;
    assert_int_equal(parse("unit=%zz", &q, &ei), AB_ERR_BAD_REQUEST);
    assert_string_equal(ei.field, "unit");
    assert_int_equal(parse("unit=a%00b", &q, &ei), AB_ERR_BAD_REQUEST);
    assert_string_equal(ei.field, "unit");
    assert_int_equal(parse("unit=%ff", &q, &ei), AB_ERR_BAD_REQUEST);
    assert_int_equal(parse("%zz=1", &q, &ei), AB_ERR_BAD_REQUEST);
    assert_string_equal(ei.field, "query");
    assert_int_equal(parse("=1", &q, &ei), AB_ERR_BAD_REQUEST);
    char many[1024] = "";
    for (int i = 0; i <= AB_URL_MAX_PARAMS; i++)
        strncat(many, "a=1&", sizeof(many) - strlen(many) - 1);
    assert_int_equal(parse(many, &q, &ei), AB_ERR_BAD_REQUEST);
    assert_non_null(strstr(ei.message, "more than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_query_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
