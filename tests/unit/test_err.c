/* Unit tests of lib/err.c: the code -> status mapping and the JSON error body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/err.h"

static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(ab_err_http_status(AB_OK), 200);
    assert_int_equal(ab_err_http_status(AB_ERR_BAD_REQUEST), 400);
    assert_int_equal(ab_err_http_status(AB_ERR_INVALID_JSON), 400);
    assert_int_equal(ab_err_http_status(AB_ERR_INVALID_FIELD), 400);
    assert_int_equal(ab_err_http_status(AB_ERR_UNAUTHORIZED), 401);
    assert_int_equal(ab_err_http_status(AB_ERR_FORBIDDEN), 403);
    assert_int_equal(ab_err_http_status(AB_ERR_NOT_FOUND), 404);
    assert_int_equal(ab_err_http_status(AB_ERR_METHOD_NOT_ALLOWED), 405);
    assert_int_equal(ab_err_http_status(AB_ERR_CONFLICT), 409);
    assert_int_equal(ab_err_http_status(AB_ERR_TOO_LARGE), 413);
    assert_int_equal(ab_err_http_status(AB_ERR_UNSUPPORTED_MEDIA), 415);
    assert_int_equal(ab_err_http_status(AB_ERR_RATE_LIMITED), 429);
    assert_int_equal(ab_err_http_status(AB_ERR_HEADERS_TOO_LARGE), 431);
    assert_int_equal(ab_err_http_status(AB_ERR_UNAVAILABLE), 503);
    assert_int_equal(ab_err_http_status(AB_ERR_STORAGE), 500);
    assert_int_equal(ab_err_http_status(AB_ERR_SCHEMA_TOO_NEW), 500);
    /* out-of-range codes are internal errors, never a crash or a 200 */
    assert_int_equal(ab_err_http_status((enum ab_err)-1000), 500);
    assert_string_equal(ab_err_code((enum ab_err)-1000), "internal_error");
    assert_int_equal(ab_err_http_status((enum ab_err)5), 500);
}

static void test_codes_are_unique_snake_case(void **state)
{
    (void)state;
    for (int i = 0; i < AB_ERR_COUNT; i++) {
        const char *c = ab_err_code((enum ab_err)-i);
        for (const char *p = c; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        for (int j = 0; j < i; j++)
            assert_string_not_equal(c, ab_err_code((enum ab_err)-j));
    }
    assert_string_equal(ab_err_code(AB_ERR_NOT_FOUND), "not_found");
    assert_string_equal(ab_err_code(AB_ERR_TOO_LARGE), "payload_too_large");
}

static void test_fail_records_field_and_message(void **state)
{
    (void)state;
    struct ab_errinfo ei;
    enum ab_err rc = ab_fail(&ei, AB_ERR_INVALID_FIELD, "events[3].ts", "must be %s", "a number");
    assert_int_equal(rc, AB_ERR_INVALID_FIELD);
    assert_string_equal(ei.field, "events[3].ts");
    assert_string_equal(ei.message, "must be a number");
    assert_int_equal(ab_fail(NULL, AB_ERR_IO, NULL, "x"), AB_ERR_IO); /* NULL errinfo is fine */
    ab_fail(&ei, AB_ERR_IO, NULL, "no field");
    assert_string_equal(ei.field, "");
    ab_errinfo_clear(&ei);
    assert_string_equal(ei.message, "");
}

static void test_error_body_shape(void **state)
{
    (void)state;
    json_t *b = ab_err_body(AB_ERR_INVALID_FIELD, "must be a string", "unit");
    char *s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"error\":{\"code\":\"invalid_field\",\"field\":\"unit\",\"message\":\"must be a string\"}}");
    free(s);
    json_decref(b);
    /* no message: the generic text; no field: null */
    b = ab_err_body(AB_ERR_NOT_FOUND, NULL, NULL);
    json_t *e = json_object_get(b, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "not_found");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "no such resource");
    assert_true(json_is_null(json_object_get(e, "field")));
    json_decref(b);
    /* a message that is not UTF-8 must not vanish or break the body */
    b = ab_err_body(AB_ERR_BAD_REQUEST, "bad \xff byte", "");
    e = json_object_get(b, "error");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "the request is malformed");
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_codes_are_unique_snake_case),
        cmocka_unit_test(test_fail_records_field_and_message),
        cmocka_unit_test(test_error_body_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
