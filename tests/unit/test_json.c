/*
 * Unit tests of lib/json.c: limits on size and depth, error positions, duplicate keys, and that
 * within the limits the document or the error is exactly jansson's (json_loadb with the same
 * flags), over strings, escapes, numbers and syntax.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/json.h"
#include "json_strict.h"

static enum ab_err parse(const char *s, const struct ab_json_limits *lim, json_t **out,
                         struct ab_errinfo *ei)
{
    return ab_json_parse(s, strlen(s), lim, out, ei);
}

/*
 * Parses s[0..len) with ab_json_parse and with json_loadb (same flags): both accept, with strictly
 * the same document, or both refuse, with jansson's error in ei->message. Returns ab_json_parse's
 * document (the caller's) or NULL.
 */
static json_t *check_len(const char *s, size_t len)
{
    json_t *doc = (json_t *)1;
    struct ab_errinfo ei;
    json_error_t jerr;
    enum ab_err rc = ab_json_parse(s, len, NULL, &doc, &ei);
    json_t *ref = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (ref == NULL) {
        char msg[sizeof(ei.message)];
        snprintf(msg, sizeof(msg), "invalid JSON at line %d, column %d (byte %d): %s", jerr.line,
                 jerr.column, jerr.position, jerr.text);
        assert_int_equal(rc, AB_ERR_INVALID_JSON);
        assert_null(doc);
        assert_string_equal(ei.message, msg);
        return NULL;
    }
    assert_int_equal(rc, AB_OK);
    assert_true(json_equal(doc, ref) && json_strict_equal(doc, ref));
    json_decref(ref);
    return doc;
}

static json_t *check(const char *s)
{
    return check_len(s, strlen(s));
}

/* check() of a document that must parse; frees it. */
static void check_ok(const char *s)
{
    json_t *doc = check(s);
    assert_non_null(doc);
    json_decref(doc);
}

/* check() of an input jansson refuses, with text in its error. */
static void check_refused(const char *s, size_t len, const char *text)
{
    struct ab_errinfo ei;
    json_t *doc;
    assert_null(check_len(s, len));
    assert_int_equal(ab_json_parse(s, len, NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_non_null(strstr(ei.message, text));
}

#define REFUSED(s, text) check_refused(s, sizeof(s) - 1, text)

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

static void test_post_body(void **state)
{
    (void)state;
    json_t *doc = check("{\"unit\":\"user-12345\",\"attributes\":{\"country\":\"FR\",\"age\":31,"
                        "\"plan\":\"pro\"}}");
    assert_string_equal(json_string_value(json_object_get(doc, "unit")), "user-12345");
    json_t *attrs = json_object_get(doc, "attributes");
    const char *order[] = {"country", "age", "plan"};
    int i = 0;
    for (void *it = json_object_iter(attrs); it != NULL; it = json_object_iter_next(attrs, it))
        assert_string_equal(json_object_iter_key(it), order[i++]);
    assert_int_equal(i, 3);
    assert_true(json_is_integer(json_object_get(attrs, "age")));
    assert_int_equal(json_integer_value(json_object_get(attrs, "age")), 31);
    json_decref(doc);
    /* the same shape with whitespace everywhere jansson allows it */
    check_ok(" \t\r\n{ \"unit\" :\t\"u\" ,\n\"attributes\" : { } , \"x\":[ 1 , [ ] ,{}] }\r\n");
    check_ok("[]");
    check_ok("{}");
    check_ok("[[[{}]],{\"a\":[{\"b\":null}]}]");
    check_ok("[true,false,null]");
    /* any value at the top level (JSON_DECODE_ANY) */
    check_ok("\"top\"");
    check_ok(" 42 ");
    check_ok("true");
    check_ok("null");
}

static void test_strings(void **state)
{
    (void)state;
    json_t *doc = check("[\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\"]");
    assert_string_equal(json_string_value(json_array_get(doc, 0)), "q\"b\\s/\b\f\n\r\t");
    json_decref(doc);
    /* \uXXXX in both cases of hex, 1 to 3 bytes of UTF-8, and a surrogate pair to 4 */
    doc = check("[\"\\u0041\\u00e9\\u00E9\\u20AC\\uffff\\ud83d\\ude00\\uDBFF\\uDFFF\"]");
    const char want[] = "A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    assert_int_equal(json_string_length(json_array_get(doc, 0)), sizeof(want) - 1);
    assert_memory_equal(json_string_value(json_array_get(doc, 0)), want, sizeof(want) - 1);
    json_decref(doc);
    /* non-ASCII text as is: 2, 3 and 4 byte sequences, U+D7FF and U+E000 around the surrogates */
    check_ok("{\"caf\xc3\xa9\":\"\xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 "
             "\xed\x9f\xbf\xee\x80\x80\"}");
    check_ok("[\"\x7f\", \"\xc2\x80\", \"\xf4\x8f\xbf\xbf\"]");
    /* escaped keys, nested under escaped keys, keep their order and bytes */
    check_ok("{\"k\\u00e9y\":{\"a\\nb\":{\"c\\\"d\":\"\\t\"},\"z\":1},\"plain\":[\"\\/\"],"
             "\"\\u0041\":2}");
    /* an escaped duplicate of a plain key, and the other way round */
    REFUSED("{\"a\":1,\"\\u0061\":2}", "duplicate object key");
    REFUSED("{\"\\u0061\":1,\"a\":2}", "duplicate object key");
}

static void test_refused_strings(void **state)
{
    (void)state;
    REFUSED("[\"\\ud83d\"]", "invalid Unicode"); /* lone high surrogate */
    REFUSED("[\"\\ud83dx\"]", "invalid Unicode");
    REFUSED("[\"\\ude00\"]", "invalid Unicode"); /* lone low surrogate */
    REFUSED("[\"\\ud83d\\u0041\"]", "invalid Unicode"); /* high, then not a low one */
    REFUSED("[\"\\ud83d\\ud83d\"]", "invalid Unicode");
    REFUSED("[\"a\\u0000b\"]", "\\u0000 is not allowed");
    REFUSED("{\"\\u0000\":1}", "NUL byte in object key");
    REFUSED("[\"\\u12\"]", "invalid escape");
    REFUSED("[\"\\u12g4\"]", "invalid escape");
    REFUSED("[\"\\x\"]", "invalid escape");
    REFUSED("[\"\\\"]", "premature end of input");
    REFUSED("[\"abc", "premature end of input");
    /* control characters: raw ones below 0x20, a raw newline, a raw NUL */
    REFUSED("[\"a\x01\"]", "control character 0x1");
    REFUSED("[\"a\x1f\"]", "control character 0x1f");
    REFUSED("[\"a\nb\"]", "unexpected newline");
    REFUSED("[\"a\0b\"]", "control character 0x0");
    /* invalid UTF-8: a stray continuation byte, bytes never valid, overlong, UTF-8 surrogates,
       over U+10FFFF, truncated sequences, a bad continuation, high bytes outside strings */
    REFUSED("[\"\x80\"]", "unable to decode byte 0x80");
    REFUSED("[\"\xff\"]", "unable to decode byte 0xff");
    REFUSED("[\"\xc0\xaf\"]", "unable to decode byte 0xc0");
    REFUSED("[\"\xe0\x80\xaf\"]", "unable to decode byte 0xe0");
    REFUSED("[\"\xf0\x80\x80\xaf\"]", "unable to decode byte 0xf0");
    REFUSED("[\"\xed\xa0\x80\"]", "unable to decode byte 0xed");
    REFUSED("[\"\xf4\x90\x80\x80\"]", "unable to decode byte 0xf4");
    REFUSED("[\"\xe2\x82\"]", "unable to decode byte 0xe2");
    REFUSED("[\"\xe2\x82", "unable to decode byte 0xe2");
    REFUSED("[\"\xc3\x28\"]", "unable to decode byte 0xc3");
    REFUSED("[\xc3\xa9]", "invalid token");
}

static void test_numbers(void **state)
{
    (void)state;
    json_t *doc = check("[9223372036854775807,-9223372036854775808,0,-0,7,-12]");
    assert_true(json_integer_value(json_array_get(doc, 0)) == 9223372036854775807LL);
    assert_true(json_integer_value(json_array_get(doc, 1)) == -9223372036854775807LL - 1);
    assert_true(json_is_integer(json_array_get(doc, 3)));
    json_decref(doc);
    REFUSED("[9223372036854775808]", "too big integer");
    REFUSED("[-9223372036854775809]", "too big negative integer");
    REFUSED("[99999999999999999999999]", "too big integer");
    /* reals: a '.', 'e' or 'E' makes one, whatever the value */
    doc = check("[1.5,1e2,-0.0,1E+2,2.5e-3,0e0,-1.25E-2,1e-400,0.1,1.7976931348623157e308]");
    for (size_t i = 0; i < json_array_size(doc); i++)
        assert_true(json_is_real(json_array_get(doc, i)));
    assert_true(json_real_value(json_array_get(doc, 0)) == 1.5);
    assert_true(json_real_value(json_array_get(doc, 1)) == 100.0);
    assert_true(signbit(json_real_value(json_array_get(doc, 2))));
    assert_true(json_real_value(json_array_get(doc, 7)) == 0.0); /* underflow is accepted */
    json_decref(doc);
    REFUSED("[1e400]", "real number overflow");
    REFUSED("[-1e400]", "real number overflow");
    REFUSED("[1.8e308]", "real number overflow");
    /* jansson's grammar: no leading zeros, digits after '-', '.' and the exponent */
    REFUSED("[01]", "invalid token");
    REFUSED("[-01]", "invalid token");
    REFUSED("[00]", "invalid token");
    REFUSED("[-]", "invalid token");
    REFUSED("[1.]", "invalid token");
    REFUSED("[.5]", "invalid token");
    REFUSED("[1e]", "invalid token");
    REFUSED("[1e+]", "invalid token");
    REFUSED("[+1]", "invalid token");
    REFUSED("[1.5.3]", "']' expected near '.'");
    REFUSED("[0x10]", "']' expected near 'x'");
    REFUSED("1-2", "end of file expected");
}

static void test_refused_syntax(void **state)
{
    (void)state;
    REFUSED("{\"a\":1,\"a\":2}", "duplicate object key");
    REFUSED("[{\"b\":{\"x\":1,\"y\":2,\"x\":3}}]", "duplicate object key");
    REFUSED("{\"a\":1} trailing", "end of file expected");
    REFUSED("[1] ]", "end of file expected");
    REFUSED("1 2", "end of file expected");
    REFUSED("[1,]", "unexpected token");
    REFUSED("{\"a\":1,}", "string or '}' expected");
    REFUSED("{\"a\" 1}", "':' expected");
    REFUSED("{a:1}", "string or '}' expected");
    REFUSED("[1 2]", "']' expected");
    REFUSED("[tru]", "invalid token");
    REFUSED("[truex]", "invalid token");
    REFUSED("[nul]", "invalid token");
    REFUSED("[\x0c" "1]", "invalid token"); /* form feed is not JSON whitespace */
    REFUSED("", "end of file");
    REFUSED("   ", "end of file");
    REFUSED("[", "end of file");
}

/*
 * check() of an array holding a string (["head, n times 'a', tail) or a real ([0.head, n times
 * '0', tail); returns the length of the string.
 */
static size_t check_long(int num, const char *head, size_t n, const char *tail)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *s = malloc(hl + n + tl + 5), *p = s;
    memcpy(p, num ? "[0." : "[\"", num ? 3 : 2);
    p += num ? 3 : 2;
    memcpy(p, head, hl);
    memset(p + hl, num ? '0' : 'a', n);
    p += hl + n;
    memcpy(p, tail, tl + 1);
    json_t *doc = check(s);
    free(s);
    assert_non_null(doc);
    size_t len = json_string_length(json_array_get(doc, 0));
    json_decref(doc);
    return len;
}

static void test_long_strings(void **state)
{
    (void)state;
    /* escaped strings and reals around 4096 bytes, and a long string without an escape */
    assert_int_equal(check_long(0, "\\n", 4095, "\"]"), 4096);
    assert_int_equal(check_long(0, "\\n", 4096, "\"]"), 4097);
    assert_int_equal(check_long(0, "", 4095, "\\n\"]"), 4096); 
    assert_int_equal(check_long(0, "", 4096, "\\n\"]"), 4097);
    assert_int_equal(check_long(0, "\\t", 4093, "\xc3\xa9\"]"), 4096);
    assert_int_equal(check_long(0, "\\t", 4094, "\xc3\xa9\"]"), 4097);
    assert_int_equal(check_long(0, "", 4092, "\\ud83d\\ude00\"]"), 4096);
    assert_int_equal(check_long(0, "", 4093, "\\ud83d\\ude00\"]"), 4097);
    assert_int_equal(check_long(0, "", 100000, "\xe2\x82\xac\"]"), 100003);
    check_long(1, "", 4093, "1]"); /* "0." and 4094 digits: 4096 bytes */
    check_long(1, "", 4094, "1]");
}

static void test_deep_and_nul(void **state)
{
    (void)state;
    /* valid inputs: nesting of 300 levels within a limit of 300, and a NUL byte after a
       number, which jansson's lexer skips */
    struct ab_json_limits lim = {1 << 20, 300};
    char deep[601];
    json_t *doc;
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    deep[600] = '\0';
    assert_int_equal(ab_json_parse(deep, 600, &lim, &doc, NULL), AB_OK);
    json_decref(doc);
    doc = check_len("1\0", 2);
    assert_int_equal(json_integer_value(doc), 1);
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
    assert_string_equal(ei.message, "invalid JSON at line 2, column 9 (byte 17): invalid token "
                                    "near 'tru'");
    assert_null(check("{\"a\":1,\n \"b\": tru}"));
    assert_int_equal(parse("[1,\n2,\n\"\xc3\x28\"]", NULL, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_string_equal(ei.message, "invalid JSON at line 3, column 1 (byte 8): unable to decode "
                                    "byte 0xc3 near '\"'");
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
    assert_string_equal(ei.message, "JSON nests deeper than 3 levels");
    /* too deep wins over a syntax error, as when the pre-scan ran first */
    assert_int_equal(parse("[[[[x", &lim, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_string_equal(ei.message, "JSON nests deeper than 3 levels");
    /* depth 0 takes scalars only, a negative depth nothing */
    struct ab_json_limits flat = {1 << 20, 0}, none = {1 << 20, -1};
    assert_int_equal(parse("7", &flat, &doc, &ei), AB_OK);
    json_decref(doc);
    assert_int_equal(parse("[]", &flat, &doc, &ei), AB_ERR_INVALID_JSON);
    assert_int_equal(parse("7", &none, &doc, &ei), AB_ERR_INVALID_JSON);
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
        cmocka_unit_test(test_post_body),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_refused_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_refused_syntax),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_deep_and_nul),
        cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_duplicates_nul_and_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
