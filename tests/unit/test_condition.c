/*
 * Unit tests of assign/condition.c: every evalCondition case of GrowthBook's cross-SDK suite
 * (tests/data/growthbook-cases.json), then what the suite leaves out: JavaScript conversions the
 * reference relies on, refusals, deep nesting, and one compiled regex evaluated from two threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "condition.h"

static json_t *parse(const char *s)
{
    json_error_t err;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &err);
    if (j == NULL)
        fail_msg("bad JSON in the test: %s: %s", s, err.text);
    return j;
}

/* Compiles cond (with groups, may be NULL) and evaluates it against attrs; -1 if refused. */
static int eval_json(const char *cond, const char *attrs, const char *groups)
{
    json_t *c = parse(cond), *a = parse(attrs), *g = groups != NULL ? parse(groups) : NULL;
    struct assign_cond *ac;
    struct ab_errinfo ei;
    int r = -1;
    if (assign_cond_compile(c, g, &ac, &ei) == AB_OK) {
        r = assign_cond_eval(ac, a);
        struct assign_attrs index;
        assign_attrs_index(&index, a);
        if (json_is_object(a) && assign_cond_eval_attrs(ac, &index) != r)
            fail_msg("indexed attributes disagree on %s with %s", cond, attrs);
    }
    assign_cond_free(ac);
    json_decref(c);
    json_decref(a);
    json_decref(g);
    return r;
}

static void test_growthbook_cases(void **state)
{
    (void)state;
    const char *dir = getenv("ABACUS_TEST_DATA");
    char path[1024];
    json_error_t err;
    assert_non_null(dir);
    snprintf(path, sizeof path, "%s/growthbook-cases.json", dir);
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL)
        fail_msg("%s: %s", path, err.text);
    json_t *cases = json_object_get(doc, "evalCondition");
    size_t total = json_array_size(cases), passed = 0;
    assert_true(total > 200);
    for (size_t i = 0; i < total; i++) {
        json_t *c = json_array_get(cases, i);
        const char *name = json_string_value(json_array_get(c, 0));
        struct assign_cond *ac;
        struct ab_errinfo ei;
        int got = -1;
        if (assign_cond_compile(json_array_get(c, 1), json_array_get(c, 4), &ac, &ei) == AB_OK) {
            got = assign_cond_eval(ac, json_array_get(c, 2));
            struct assign_attrs index;
            assign_attrs_index(&index, json_array_get(c, 2));
            if (json_is_object(json_array_get(c, 2)) && assign_cond_eval_attrs(ac, &index) != got)
                got = -2;
        }
        assign_cond_free(ac);
        if (got == json_is_true(json_array_get(c, 3)))
            passed++;
        else
            printf("evalCondition FAILED: %s (got %d)\n", name, got);
    }
    printf("evalCondition: %zu/%zu passed\n", passed, total);
    json_decref(doc);
    assert_int_equal(passed, total);
}

/* Conversions and comparisons of the reference that its suite does not exercise. */
static void test_javascript_semantics(void **state)
{
    (void)state;
    static const struct {
        const char *cond, *attrs, *groups;
        int want;
    } cases[] = {
        /* value + "" === condition: Number::toString, Array join, Object */
        {"{\"n\":\"1e+21\"}", "{\"n\":1e21}", NULL, 1},
        {"{\"n\":\"100000000000000000000\"}", "{\"n\":1e20}", NULL, 1},
        {"{\"n\":\"1e-7\"}", "{\"n\":0.0000001}", NULL, 1},
        {"{\"n\":\"0.000001\"}", "{\"n\":1e-6}", NULL, 1},
        {"{\"n\":\"0.1\"}", "{\"n\":0.1}", NULL, 1},
        {"{\"n\":\"-1.5\"}", "{\"n\":-1.5}", NULL, 1},
        {"{\"n\":\"5\"}", "{\"n\":5.0}", NULL, 1},
        {"{\"t\":\"1,,2\"}", "{\"t\":[1,null,2]}", NULL, 1},
        {"{\"t\":\"[object Object]\"}", "{\"t\":{}}", NULL, 1},
        {"{\"t\":\"null\"}", "{}", NULL, 1},
        {"{\"t\":\"true\"}", "{\"t\":true}", NULL, 1},
        /* value * 1 === condition: StringToNumber */
        {"{\"n\":16}", "{\"n\":\"0x10\"}", NULL, 1},
        {"{\"n\":5}", "{\"n\":\"0b101\"}", NULL, 1},
        {"{\"n\":0}", "{\"n\":\" \\t\"}", NULL, 1},
        {"{\"n\":12}", "{\"n\":\" 12\\u00a0\"}", NULL, 1},
        {"{\"n\":1}", "{\"n\":[\"1\"]}", NULL, 1},
        {"{\"n\":1}", "{\"n\":true}", NULL, 1},
        {"{\"n\":0}", "{}", NULL, 1},
        {"{\"n\":-16}", "{\"n\":\"-0x10\"}", NULL, 0},
        {"{\"n\":1}", "{\"n\":\"1a\"}", NULL, 0},
        /* relational operators: strings by UTF-16 code units, else numbers */
        {"{\"s\":{\"$gt\":\"\\uffff\"}}", "{\"s\":\"\\ud83d\\ude00\"}", NULL, 0},
        {"{\"s\":{\"$lt\":\"\\uffff\"}}", "{\"s\":\"\\ud83d\\ude00\"}", NULL, 1},
        {"{\"s\":{\"$gt\":\"\\u00e9\"}}", "{\"s\":\"\\u00ff\"}", NULL, 1},
        {"{\"n\":{\"$gt\":\"10\"}}", "{\"n\":\"9\"}", NULL, 1},
        {"{\"n\":{\"$gt\":10}}", "{\"n\":\"9\"}", NULL, 0},
        {"{\"n\":{\"$lte\":10}}", "{\"n\":\"abc\"}", NULL, 0},
        {"{\"n\":{\"$gte\":\"1\"}}", "{\"n\":[2]}", NULL, 1},
        /* === and SameValueZero: arrays and objects are never identical */
        {"{\"x\":{\"$eq\":[1]}}", "{\"x\":[1]}", NULL, 0},
        {"{\"x\":{\"$ne\":[1]}}", "{\"x\":[1]}", NULL, 1},
        {"{\"x\":{\"$eq\":null}}", "{}", NULL, 1},
        {"{\"x\":{\"$in\":[null]}}", "{}", NULL, 1},
        {"{\"x\":{\"$in\":[[1]]}}", "{\"x\":[1]}", NULL, 0},
        {"{\"x\":{\"$in\":[1,\"1\"]}}", "{\"x\":true}", NULL, 0},
        {"{\"x\":{\"$in\":[2.0]}}", "{\"x\":2}", NULL, 1},
        /* string sets: scanned by a tag of 7 bytes and the length, or searched past 16 */
        {"{\"x\":{\"$in\":[\"abcdefgX\",\"abcdefgY\"]}}", "{\"x\":\"abcdefgY\"}", NULL, 1},
        {"{\"x\":{\"$in\":[\"abcdefgX\",\"abcdefgY\"]}}", "{\"x\":\"abcdefgZ\"}", NULL, 0},
        {"{\"x\":{\"$nin\":[\"abcdefg\",\"abcdefgh\"]}}", "{\"x\":\"abcdefgi\"}", NULL, 1},
        {"{\"x\":{\"$in\":[\"\",\"a\"]}}", "{\"x\":\"\"}", NULL, 1},
        {"{\"x\":{\"$in\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\","
         "\"m\",\"n\",\"o\",\"p\",\"q\"]}}",
         "{\"x\":\"q\"}", NULL, 1},
        {"{\"x\":{\"$in\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\","
         "\"m\",\"n\",\"o\",\"p\",\"q\"]}}",
         "{\"x\":\"r\"}", NULL, 0},
        /* JSON.stringify equality: key order counts, array indices first */
        {"{\"x\":[1]}", "{\"x\":[1.0]}", NULL, 1},
        {"{\"o\":{\"b\":1,\"a\":2}}", "{\"o\":{\"a\":2,\"b\":1}}", NULL, 0},
        {"{\"o\":{\"1\":1,\"a\":2}}", "{\"o\":{\"a\":2,\"1\":1}}", NULL, 1},
        {"{\"o\":{\"a\":{\"b\":[1,{\"c\":null}]}}}", "{\"o\":{\"a\":{\"b\":[1,{\"c\":null}]}}}",
         NULL, 1},
        {"{\"o\":{\"a\":{\"b\":[1,{\"c\":null}]}}}", "{\"o\":{\"a\":{\"b\":[1,{\"c\":0}]}}}", NULL,
         0},
        /* logic */
        {"{\"$nor\":[]}", "{}", NULL, 0},
        {"{\"$or\":[{\"a\":1}],\"$nor\":[{\"a\":2}],\"$and\":[{\"a\":{\"$gt\":0}}]}", "{\"a\":1}",
         NULL, 1},
        {"{\"x\":{}}", "{\"x\":{}}", NULL, 1},
        {"{\"x\":{}}", "{}", NULL, 0},
        {"{\"a\":1,\"$x\":{\"$exists\":false}}", "{\"a\":1}", NULL, 1},
        /* case-insensitive operators on non-ASCII letters */
        {"{\"c\":{\"$ini\":[\"\\u00c9COLE\"]}}", "{\"c\":\"\\u00e9cole\"}", NULL, 1},
        {"{\"c\":{\"$nini\":[\"\\u00c9COLE\",1]}}", "{\"c\":[\"x\",1]}", NULL, 0},
        {"{\"c\":{\"$alli\":[\"M\\u00dcNCHEN\",1]}}", "{\"c\":[\"m\\u00fcnchen\",\"1\"]}", NULL, 1},
        /* regexes: the subject is ToString(value); JavaScript's $, ., \\u, [^], back-references */
        {"{\"u\":{\"$regex\":\"^null$\"}}", "{}", NULL, 1},
        {"{\"u\":{\"$regex\":\"^1,2$\"}}", "{\"u\":[1,2]}", NULL, 1},
        {"{\"s\":{\"$regex\":\"a$\"}}", "{\"s\":\"a\\n\"}", NULL, 0},
        {"{\"s\":{\"$regex\":\"^a.b$\"}}", "{\"s\":\"a\\rb\"}", NULL, 0},
        {"{\"s\":{\"$regex\":\"^a.b$\"}}", "{\"s\":\"a\\u00e9b\"}", NULL, 1},
        {"{\"s\":{\"$regex\":\"\\\\u0041\"}}", "{\"s\":\"xAx\"}", NULL, 1},
        {"{\"s\":{\"$regex\":\"^[^]$\"}}", "{\"s\":\"\\n\"}", NULL, 1},
        {"{\"s\":{\"$regex\":\"^\\\\1(a)$\"}}", "{\"s\":\"a\"}", NULL, 1},
        {"{\"s\":{\"$regex\":5}}", "{\"s\":\"5\"}", NULL, 0},
        {"{\"s\":{\"$regexi\":\"STRASSE$\"}}", "{\"s\":\"Hauptstrasse\"}", NULL, 1},
        /* versions: numbers become strings, other non-strings "0" */
        {"{\"v\":{\"$vgt\":\"1.2.3\"}}", "{\"v\":2}", NULL, 1},
        {"{\"v\":{\"$veq\":\"0\"}}", "{}", NULL, 1},
        {"{\"v\":{\"$veq\":\"1.2.3\"}}", "{\"v\":\"v1.2.3+b\\n+c\"}", NULL, 0},
        {"{\"v\":{\"$vlt\":\"1.10.0\"}}", "{\"v\":\"1.9.0\"}", NULL, 1},
        {"{\"v\":{\"$vgte\":2}}", "{\"v\":\"2.0\"}", NULL, 1},
        /* $exists, $size, $type, $all, $elemMatch */
        {"{\"x\":{\"$exists\":\"0\"}}", "{\"x\":1}", NULL, 1},
        {"{\"x\":{\"$exists\":0}}", "{\"x\":null}", NULL, 1},
        {"{\"x\":{\"$size\":\"2\"}}", "{\"x\":[1,2]}", NULL, 1},
        {"{\"x\":{\"$type\":\"undefined\"}}", "{}", NULL, 0},
        {"{\"x\":{\"$type\":\"null\"}}", "{}", NULL, 1},
        {"{\"x\":{\"$all\":[]}}", "{\"x\":[]}", NULL, 1},
        {"{\"x\":{\"$all\":[{\"$gt\":2},1]}}", "{\"x\":[1,3]}", NULL, 1},
        {"{\"x\":{\"$elemMatch\":{\"$eq\":0}}}", "{\"x\":[0]}", NULL, 0},
        {"{\"x\":{\"$elemMatch\":{}}}", "{\"x\":[0,\"\",1]}", NULL, 1},
        {"{\"x\":{\"$elemMatch\":{\"a\":1}}}", "{\"x\":[{\"a\":2},{\"a\":1}]}", NULL, 1},
        /* paths through arrays */
        {"{\"a.1.b\":\"x\"}", "{\"a\":[{},{\"b\":\"x\"}]}", NULL, 1},
        {"{\"a.01.b\":{\"$exists\":true}}", "{\"a\":[{},{\"b\":\"x\"}]}", NULL, 0},
        {"{\"a.length\":2}", "{\"a\":[5,6]}", NULL, 1},
        {"{\"a.length\":{\"$exists\":true}}", "{\"a\":\"str\"}", NULL, 0},
        {"{\"a.b\":1}", "{\"a.b\":1}", NULL, 0},
        {"{\"\":1}", "{\"\":1}", NULL, 1},
        /* saved groups: the key is String(id) */
        {"{\"id\":{\"$inGroup\":5}}", "{\"id\":1}", "{\"5\":[1]}", 1},
        {"{\"id\":{\"$inGroup\":\"g\"}}", "{\"id\":[7,1]}", "{\"g\":[1]}", 1},
        {"{\"id\":{\"$inGroup\":\"g\"}}", "{\"id\":1}", NULL, 0},
    };
    size_t failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = eval_json(cases[i].cond, cases[i].attrs, cases[i].groups);
        if (got != cases[i].want) {
            printf("FAILED: %s against %s: got %d, want %d\n", cases[i].cond, cases[i].attrs, got,
                   cases[i].want);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

static void expect_refused(const char *cond, const char *field)
{
    json_t *c = cond != NULL ? parse(cond) : NULL;
    struct assign_cond *ac = (struct assign_cond *)&ac;
    struct ab_errinfo ei;
    assert_int_equal(assign_cond_compile(c, NULL, &ac, &ei), AB_ERR_INVALID_FIELD);
    assert_null(ac);
    assert_string_equal(ei.field, field);
    assert_true(strlen(ei.message) > 0);
    json_decref(c);
}

/* Indexed attributes: found at any position, also past what the index holds, and missing ones. */
static void test_indexed_attributes(void **state)
{
    (void)state;
    char attrs[1024] = "{";
    for (int i = 0; i < ASSIGN_ATTRS_INDEXED + 4; i++)
        snprintf(attrs + strlen(attrs), sizeof(attrs) - strlen(attrs), "%s\"a%d\": %d",
                 i > 0 ? ", " : "", i, i);
    snprintf(attrs + strlen(attrs), sizeof(attrs) - strlen(attrs), "}");
    assert_int_equal(eval_json("{\"a0\": 0, \"a19\": 19}", attrs, NULL), 1);
    assert_int_equal(eval_json("{\"a19\": 18}", attrs, NULL), 0);
    assert_int_equal(eval_json("{\"a99\": {\"$exists\": false}}", attrs, NULL), 1);
    assert_int_equal(eval_json("{\"a\": 1, \"ab\": 2}", "{\"ab\": 2, \"a\": 1}", NULL), 1);
    assert_int_equal(eval_json("{\"\": 1}", "{\"\": 1, \"x\": 2}", NULL), 1);
    assert_int_equal(eval_json("{\"x.y\": 1}", "{\"x\": {\"y\": 1}}", NULL), 1);

    /* names that share their first 8 bytes (the tag), or differ only in length */
    assert_int_equal(eval_json("{\"attribute_a\": 1, \"attribute\": 3}",
                               "{\"attribute_b\": 2, \"attribute_a\": 1, \"attribute\": 3, "
                               "\"attribut\": 4}",
                               NULL),
                     1);
    assert_int_equal(eval_json("{\"attribute_b\": 1}", "{\"attribute_a\": 1}", NULL), 0);
    /* the tag holds 7 bytes and the length: 8-byte names differing in their last byte */
    assert_int_equal(eval_json("{\"abcdefgX\": 1, \"abcdefg\": 2}",
                               "{\"abcdefgY\": 2, \"abcdefgX\": 1, \"abcdefg\": 2}", NULL),
                     1);
    assert_int_equal(eval_json("{\"abcdefgY\": {\"$exists\": true}}", "{\"abcdefgX\": 1}", NULL),
                     0);

    json_t *many = json_loads(attrs, 0, NULL);
    json_t *few = json_pack("{s:i, s:i}", "a", 1, "abcdefgh+", 2);
    struct assign_attrs index;
    assign_attrs_index(&index, many);
    assert_int_equal(index.indexed, 0);
    assert_ptr_equal(assign_attrs_get(&index, "a19", 3, assign_attr_tag("a19", 3)),
                     json_object_get(many, "a19"));
    assign_attrs_index(&index, few);
    assert_int_equal(index.indexed, 1);
    assert_ptr_equal(assign_attrs_get(&index, "a", 1, assign_attr_tag("a", 1)),
                     json_object_get(few, "a"));
    assert_null(assign_attrs_get(&index, "b", 1, assign_attr_tag("b", 1)));
    assert_ptr_equal(assign_attrs_get(&index, "abcdefgh+", 9, assign_attr_tag("abcdefgh+", 9)),
                     json_object_get(few, "abcdefgh+"));
    assert_null(assign_attrs_get(&index, "abcdefgh-", 9, assign_attr_tag("abcdefgh-", 9)));
    assert_null(assign_attrs_get(&index, "abcdefgh", 8, assign_attr_tag("abcdefgh", 8)));
    /* lengths past the 255 the tag holds, in names and in $in's strings */
    char cond[400], attr_short[400], attr_long[400];
    snprintf(cond, sizeof(cond), "{\"x\":{\"$in\":[\"%0300d\"]}}", 0);
    snprintf(attr_short, sizeof(attr_short), "{\"x\":\"%0256d\"}", 0);
    snprintf(attr_long, sizeof(attr_long), "{\"x\":\"%0300d\"}", 0);
    assert_int_equal(eval_json(cond, attr_short, NULL), 0);
    assert_int_equal(eval_json(cond, attr_long, NULL), 1);
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    json_t *longer = json_pack("{s:i}", name, 300);
    assign_attrs_index(&index, longer);
    assert_int_equal(index.indexed, 1);
    assert_null(assign_attrs_get(&index, name, 256, assign_attr_tag(name, 256)));
    assert_ptr_equal(assign_attrs_get(&index, name, 300, assign_attr_tag(name, 300)),
                     json_object_get(longer, name));
    json_decref(longer);
    json_decref(many);
    json_decref(few);
}

static void test_refuses(void **state)
{
    (void)state;
    expect_refused(NULL, "condition");
    expect_refused("[{\"a\":1}]", "condition");
    expect_refused("\"a\"", "condition");
    expect_refused("null", "condition");
    expect_refused("7", "condition");
    expect_refused("{\"$or\":[{\"a\":1},2]}", "condition.$or[1]");
    expect_refused("{\"$and\":{\"a\":1}}", "condition.$and");
    expect_refused("{\"$nor\":\"x\"}", "condition.$nor");
    expect_refused("{\"$not\":[]}", "condition.$not");
    expect_refused("{\"tags\":{\"$elemMatch\":5}}", "condition.tags.$elemMatch");
    expect_refused("{\"a\":{\"$not\":{\"$elemMatch\":{\"b\":{\"$elemMatch\":null}}}}}",
                   "condition.a.$not.$elemMatch.b.$elemMatch");
}

/* {"$not": {"$not": ... {"a": 1}}} with levels $not. */
static json_t *nested_not(int levels)
{
    json_t *c = json_pack("{s:i}", "a", 1);
    for (int i = 0; i < levels; i++)
        c = json_pack("{s:o}", "$not", c);
    return c;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    json_t *one = json_pack("{s:i}", "a", 1), *two = json_pack("{s:i}", "a", 2);
    struct assign_cond *ac;
    struct ab_errinfo ei;
    for (int levels = 40; levels <= 41; levels++) {
        json_t *c = nested_not(levels);
        assert_int_equal(assign_cond_compile(c, NULL, &ac, &ei), AB_OK);
        assert_int_equal(assign_cond_eval(ac, one), levels % 2 == 0);
        assert_int_equal(assign_cond_eval(ac, two), levels % 2 == 1);
        assign_cond_free(ac);
        json_decref(c);
    }
    json_t *c = nested_not(500);
    assert_int_equal(assign_cond_compile(c, NULL, &ac, &ei), AB_ERR_INVALID_FIELD);
    assert_non_null(strstr(ei.message, "deeper"));
    assert_int_equal(strncmp(ei.field, "condition.$not.$not.", 20), 0);
    json_decref(c);
    json_decref(one);
    json_decref(two);

    /* a condition (not an operator object: "k" has no '$') in $elemMatch in $elemMatch */
    assert_int_equal(eval_json("{\"a.b.c.d.e.f.g.h\":{\"$elemMatch\":{\"i\":{\"$elemMatch\":"
                               "{\"k\":null,\"$and\":[{\"$or\":[{\"j\":{\"$gt\":2}}]}]}}}}}",
                               "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":[{\"i\":"
                               "[{\"j\":1},{\"j\":3}]}]}}}}}}}}",
                               NULL),
                     1);
    assert_int_equal(eval_json("{\"a.b.c.d.e.f.g.h\":{\"$elemMatch\":{\"i\":{\"$elemMatch\":"
                               "{\"k\":null,\"$and\":[{\"$or\":[{\"j\":{\"$gt\":2}}]}]}}}}}",
                               "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":[{\"i\":"
                               "[{\"j\":1},{\"j\":2}]}]}}}}}}}}",
                               NULL),
                     0);
}

/* Catastrophic backtracking stops at PCRE2's match limit and counts as no match. */
static void test_regex_limit(void **state)
{
    (void)state;
    assert_int_equal(eval_json("{\"m\":{\"$regex\":\"^(a+)+$\"}}",
                               "{\"m\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"}",
                               NULL),
                     0);
    assert_int_equal(eval_json("{\"m\":{\"$regex\":\"^(a+)+$\"}}",
                               "{\"m\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                               NULL),
                     1);
}

struct worker {
    const struct assign_cond *cond;
    json_t *yes, *no;
    int wrong;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        w->wrong += assign_cond_eval(w->cond, w->yes) != 1;
        w->wrong += assign_cond_eval(w->cond, w->no) != 0;
    }
    return NULL;
}

static void test_regex_from_two_threads(void **state)
{
    (void)state;
    json_t *c = parse("{\"ua\":{\"$regex\":\"(Mobile|Tablet)\"},"
                      "\"country\":{\"$regexi\":\"^(fr|de)$\"}}");
    struct assign_cond *ac;
    struct ab_errinfo ei;
    assert_int_equal(assign_cond_compile(c, NULL, &ac, &ei), AB_OK);
    struct worker w[2] = {
        {ac, parse("{\"ua\":\"Android Mobile\",\"country\":\"FR\"}"),
         parse("{\"ua\":\"Android Desktop\",\"country\":\"FR\"}"), 0},
        {ac, parse("{\"ua\":\"iPad Tablet\",\"country\":\"de\"}"),
         parse("{\"ua\":\"iPad Tablet\",\"country\":\"dk\"}"), 0},
    };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].wrong, 0);
        assert_int_equal(assign_cond_eval(ac, w[i].yes), 1); /* and from this thread */
        json_decref(w[i].yes);
        json_decref(w[i].no);
    }
    assign_cond_free(ac);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growthbook_cases), cmocka_unit_test(test_javascript_semantics),
        cmocka_unit_test(test_refuses),          cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_indexed_attributes),
        cmocka_unit_test(test_regex_limit),      cmocka_unit_test(test_regex_from_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
