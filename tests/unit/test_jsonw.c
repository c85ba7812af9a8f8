/* Unit tests of lib/jsonw.c: what it writes reads back through jansson as the same value. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "abacus/jsonw.h"

static json_t *parse(const struct ab_jsonw *w)
{
    json_error_t err;
    json_t *doc = json_loadb(w->buf, w->len, JSON_DECODE_ANY, &err);
    if (doc == NULL)
        fail_msg("jansson refused %s: %s", w->buf, err.text);
    return doc;
}

static void test_strings_escape_and_roundtrip(void **state)
{
    (void)state;
    const char *cases[] = {"", "plain", "quote \" backslash \\ slash /", "\n\r\t\b\f",
                           "\x01\x1f control", "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80",
                           "</script>"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct ab_jsonw w;
        ab_jsonw_init(&w, 4096);
        ab_jsonw_str(&w, cases[i], strlen(cases[i]));
        json_t *doc = parse(&w);
        assert_string_equal(json_string_value(doc), cases[i]);
        json_decref(doc);
        ab_jsonw_dispose(&w);
    }
}

static void test_numbers(void **state)
{
    (void)state;
    double ds[] = {0.4413, 0.1, 1.0 / 3, 1e-300, 1.7976931348623157e308, -0.0, 123456789.125,
                   0.5305, 1};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        struct ab_jsonw w;
        ab_jsonw_init(&w, 4096);
        ab_jsonw_double(&w, ds[i]);
        json_t *doc = parse(&w);
        assert_true(json_is_real(doc));
        assert_true(json_real_value(doc) == ds[i]);
        json_decref(doc);
        ab_jsonw_dispose(&w);
    }
    struct ab_jsonw w;
    ab_jsonw_init(&w, 4096);
    ab_jsonw_raw(&w, "[", 1);
    ab_jsonw_double(&w, 0.4413);
    ab_jsonw_raw(&w, ",", 1);
    ab_jsonw_int(&w, -9007199254740993LL);
    ab_jsonw_raw(&w, ",", 1);
    ab_jsonw_double(&w, NAN);
    ab_jsonw_raw(&w, ",", 1);
    ab_jsonw_bool(&w, 1);
    ab_jsonw_raw(&w, "]", 1);
    assert_string_equal(w.buf, "[0.4413,-9007199254740993,null,true]");
    ab_jsonw_dispose(&w);
}

/* The shortest text that reads back as v, as printf finds it, with ".0" when it looks whole. */
static void shortest(double v, char *out, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, len, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (strpbrk(out, ".eEn") == NULL)
        snprintf(out + strlen(out), len - strlen(out), ".0");
}

/* Every bucket a hash gives (k / 10^4), and such values with whole parts and signs. */
static void test_short_decimals(void **state)
{
    (void)state;
    const double offsets[] = {0, 7, 123456, -0.0, -3};
    for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++) {
        for (int k = 0; k < 10000; k++) {
            double v = offsets[o] < 0 || signbit(offsets[o]) ? offsets[o] - k / 10000.0
                                                             : offsets[o] + k / 10000.0;
            char want[64];
            shortest(v == 0 ? 0.0 : v, want, sizeof(want)); /* -0 as 0, as JSON.stringify */
            struct ab_jsonw w;
            ab_jsonw_init(&w, 4096);
            ab_jsonw_double(&w, v);
            if (strcmp(w.buf, want) != 0)
                fail_msg("%.17g: wrote %s, want %s", v, w.buf, want);
            ab_jsonw_dispose(&w);
        }
    }
}

/* A writer in the caller's buffer stays there while the output fits, then moves to the heap. */
static void test_callers_buffer(void **state)
{
    (void)state;
    char buf[9];
    struct ab_jsonw w;
    ab_jsonw_init_in(&w, buf, 8, 64);
    ab_jsonw_raw(&w, "[1,2,3", 6);
    ab_jsonw_int(&w, 4);
    assert_ptr_equal(w.buf, buf);
    assert_false(w.owned);
    assert_string_equal(buf, "[1,2,34");
    ab_jsonw_raw(&w, ",5]", 3);
    assert_true(w.owned);
    assert_ptr_not_equal(w.buf, buf);
    assert_string_equal(w.buf, "[1,2,34,5]");
    ab_jsonw_dispose(&w);
    ab_jsonw_init_in(&w, buf, 8, 4);
    ab_jsonw_raw(&w, "12345", 5);
    assert_true(w.failed);
    assert_false(w.owned);
    ab_jsonw_dispose(&w);
}

static void test_cap(void **state)
{
    (void)state;
    struct ab_jsonw w;
    ab_jsonw_init(&w, 10);
    ab_jsonw_raw(&w, "[1,2,3,4]", 9);
    assert_false(w.failed);
    ab_jsonw_raw(&w, "xx", 2);
    assert_true(w.failed);
    size_t len = w.len;
    ab_jsonw_str(&w, "later", 5); /* ignored once failed */
    assert_int_equal(w.len, len);
    ab_jsonw_dispose(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_escape_and_roundtrip),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_short_decimals),
        cmocka_unit_test(test_callers_buffer),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
