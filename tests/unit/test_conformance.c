/*
 * GrowthBook's cross-SDK test suite (tests/data/growthbook-cases.json, see tests/data/SOURCES.md)
 * against Abacus's evaluation core: every case of the sections hash, getBucketRange,
 * chooseVariation, inNamespace, getEqualWeights, evalCondition, run and feature. Prints the count
 * per section and names each failing case. Numbers compare as JavaScript compares them (one
 * number type); bucket ranges are rounded to 6 decimals and equal weights to 8, as the suite's
 * own runner does. Plus Abacus's own vectors: non-ASCII ids as the reference JS SDK hashes them
 * (UTF-16 code units), empty and very long ids, and boundary hash values.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "assign_int.h"

static json_t *g_cases;

static int load_cases(void **state)
{
    (void)state;
    const char *dir = getenv("ABACUS_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/growthbook-cases.json", dir != NULL ? dir : "tests/data");
    json_error_t err;
    g_cases = json_load_file(path, 0, &err);
    if (g_cases == NULL)
        fprintf(stderr, "cannot load %s: %s\n", path, err.text);
    return g_cases != NULL ? 0 : -1;
}

static int free_cases(void **state)
{
    (void)state;
    json_decref(g_cases);
    return 0;
}

/* Deep equality with JavaScript's single number type. */
static int js_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!js_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            const json_t *w = json_object_get(b, k);
            if (w == NULL || !js_equal(v, w))
                return 0;
        }
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

struct tally {
    const char *section;
    int passed, failed;
};

static void check(struct tally *t, int ok, const char *name, const json_t *got,
                  const json_t *want)
{
    if (ok) {
        t->passed++;
        return;
    }
    t->failed++;
    char *g = got != NULL ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *w = want != NULL ? json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "  FAIL %s: %s\n    got  %s\n    want %s\n", t->section, name,
            g != NULL ? g : "-", w != NULL ? w : "-");
    free(g);
    free(w);
}

static void report(const struct tally *t)
{
    printf("%s: %d/%d passed\n", t->section, t->passed, t->passed + t->failed);
    assert_int_equal(t->failed, 0);
    assert_true(t->passed > 0);
}

static const json_t *section(const char *name)
{
    const json_t *s = json_object_get(g_cases, name);
    assert_true(json_is_array(s));
    return s;
}

static double round_to(double v, int decimals)
{
    double f = pow(10, decimals);
    return round(v * f) / f;
}

static void test_hash(void **state)
{
    (void)state;
    struct tally t = {"hash", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("hash"), i, c)
    {
        const char *seed = json_string_value(json_array_get(c, 0));
        const char *value = json_string_value(json_array_get(c, 1));
        int version = (int)json_integer_value(json_array_get(c, 2));
        const json_t *want = json_array_get(c, 3);
        double n = assign_hash(seed, strlen(seed), value, strlen(value), version);
        if (version == 2) {
            /* side by side with other seeds, as POST /v1/assign hashes: lanes 0, 2 and 4 */
            uint32_t st = assign_fnv1a(ASSIGN_FNV_OFFSET, seed, strlen(seed));
            uint32_t states[5] = {st, st ^ 1u, st, st * 3u, st};
            double many[5];
            assign_hash_v2_many(states, 5, value, strlen(value), many);
            if (many[0] != n || many[2] != n || many[4] != n)
                n = -2; /* fails the case below */
        }
        json_t *got = n < 0 ? json_null() : json_real(n);
        check(&t, js_equal(got, want), value, got, want);
        json_decref(got);
    }
    report(&t);
}

static void test_bucket_range(void **state)
{
    (void)state;
    struct tally t = {"getBucketRange", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("getBucketRange"), i, c)
    {
        const json_t *args = json_array_get(c, 1);
        size_t n = (size_t)json_integer_value(json_array_get(args, 0));
        double coverage = json_number_value(json_array_get(args, 1));
        const json_t *w = json_array_get(args, 2);
        double weights[16];
        size_t nw = json_is_array(w) ? json_array_size(w) : 0;
        for (size_t k = 0; k < nw && k < 16; k++)
            weights[k] = json_number_value(json_array_get(w, k));
        struct assign_range ranges[16];
        assign_bucket_ranges(n, coverage, json_is_array(w) ? weights : NULL, nw, ranges);
        json_t *got = json_array();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(got, json_pack("[f,f]", round_to(ranges[k].start, 6),
                                                 round_to(ranges[k].end, 6)));
        const json_t *want = json_array_get(c, 2);
        check(&t, js_equal(got, want), json_string_value(json_array_get(c, 0)), got, want);
        json_decref(got);
    }
    report(&t);
}

static void test_choose_variation(void **state)
{
    (void)state;
    struct tally t = {"chooseVariation", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("chooseVariation"), i, c)
    {
        const json_t *r = json_array_get(c, 2);
        struct assign_range ranges[16];
        size_t n = json_array_size(r);
        for (size_t k = 0; k < n; k++) {
            ranges[k].start = json_number_value(json_array_get(json_array_get(r, k), 0));
            ranges[k].end = json_number_value(json_array_get(json_array_get(r, k), 1));
        }
        int got = assign_choose_variation(json_number_value(json_array_get(c, 1)), ranges, n);
        json_t *g = json_integer(got);
        check(&t, js_equal(g, json_array_get(c, 3)), json_string_value(json_array_get(c, 0)), g,
              json_array_get(c, 3));
        json_decref(g);
    }
    report(&t);
}

static void test_in_namespace(void **state)
{
    (void)state;
    struct tally t = {"inNamespace", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("inNamespace"), i, c)
    {
        const char *id = json_string_value(json_array_get(c, 1));
        const json_t *ns = json_array_get(c, 2);
        const char *nsid = json_string_value(json_array_get(ns, 0));
        int got = assign_in_namespace(id, strlen(id), nsid, strlen(nsid),
                                      json_number_value(json_array_get(ns, 1)),
                                      json_number_value(json_array_get(ns, 2)));
        json_t *g = json_boolean(got);
        check(&t, js_equal(g, json_array_get(c, 3)), json_string_value(json_array_get(c, 0)), g,
              json_array_get(c, 3));
        json_decref(g);
    }
    report(&t);
}

static void test_equal_weights(void **state)
{
    (void)state;
    struct tally t = {"getEqualWeights", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("getEqualWeights"), i, c)
    {
        json_int_t n = json_integer_value(json_array_get(c, 0));
        double w[64];
        json_t *got = json_array();
        if (n > 0 && n <= 64) {
            assign_equal_weights((size_t)n, w);
            for (json_int_t k = 0; k < n; k++)
                json_array_append_new(got, json_real(round_to(w[k], 8)));
        }
        char name[32];
        snprintf(name, sizeof(name), "%lld", (long long)n);
        check(&t, js_equal(got, json_array_get(c, 1)), name, got, json_array_get(c, 1));
        json_decref(got);
    }
    report(&t);
}

static void test_eval_condition(void **state)
{
    (void)state;
    struct tally t = {"evalCondition", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("evalCondition"), i, c)
    {
        struct assign_cond *cond = NULL;
        int got = 0;
        if (assign_cond_compile(json_array_get(c, 1), json_array_get(c, 4), &cond, NULL) ==
            AB_OK) {
            got = assign_cond_eval(cond, json_array_get(c, 2));
            /* the indexed attributes a request uses must give the same answer */
            struct assign_attrs index;
            assign_attrs_index(&index, json_array_get(c, 2));
            if (json_is_object(json_array_get(c, 2)) &&
                assign_cond_eval_attrs(cond, &index) != got)
                got = -1;
        }
        assign_cond_free(cond);
        json_t *g = json_boolean(got);
        check(&t, js_equal(g, json_array_get(c, 3)), json_string_value(json_array_get(c, 0)), g,
              json_array_get(c, 3));
        json_decref(g);
    }
    report(&t);
}

/* The GrowthBook context object of a case as an assign_context. */
struct case_ctx {
    struct assign_context ctx;
    struct assign_features *features; /* the case's FeatureMap, compiled */
};

static int case_parent_cb(void *data, const char *id, json_t **value)
{
    struct case_ctx *cc = data;
    json_t *r = assign_features_eval(cc->features, id, &cc->ctx);
    *value = json_incref(json_object_get(r, "value"));
    int cyclic = strcmp(json_string_value(json_object_get(r, "source")), "cyclicPrerequisite") == 0;
    json_decref(r);
    return cyclic ? -1 : 0;
}

static void context_of(const json_t *gb, struct case_ctx *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->ctx.attributes = json_object_get(gb, "attributes");
    cc->ctx.forced_variations = json_object_get(gb, "forcedVariations");
    cc->ctx.url = json_string_value(json_object_get(gb, "url"));
    cc->ctx.qa_mode = json_is_true(json_object_get(gb, "qaMode"));
    cc->ctx.disabled = json_is_false(json_object_get(gb, "enabled"));
    cc->ctx.saved_groups = json_object_get(gb, "savedGroups");
    cc->ctx.contextual_bandits = json_object_get(gb, "contextualBandits");
    cc->ctx.parent_cb = case_parent_cb;
    cc->ctx.parent_data = cc;
    cc->features = assign_features_compile(json_object_get(gb, "features"), cc->ctx.saved_groups);
}

static void test_run(void **state)
{
    (void)state;
    struct tally t = {"run", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("run"), i, c)
    {
        struct case_ctx cc;
        context_of(json_array_get(c, 1), &cc);
        struct assign_experiment *e = NULL;
        json_t *got;
        struct ab_errinfo ei;
        if (assign_experiment_compile(json_array_get(c, 2), cc.ctx.saved_groups, &e, &ei) ==
            AB_OK) {
            struct assign_result res, indexed;
            assign_run(e, &cc.ctx, &res);
            json_t *value = json_array_get(e->variations, (size_t)res.variation);
            got = json_pack("[O,b,b]", value != NULL ? value : json_null(), res.in_experiment,
                            res.hash_used);
            /* the same with the attributes indexed, as the HTTP node evaluates */
            struct assign_attrs index;
            assign_attrs_index(&index, cc.ctx.attributes);
            cc.ctx.index = &index;
            assign_run(e, &cc.ctx, &indexed);
            if (indexed.variation != res.variation || indexed.in_experiment != res.in_experiment ||
                indexed.hash_used != res.hash_used || indexed.reason != res.reason ||
                indexed.bucket != res.bucket) {
                json_decref(got);
                got = json_pack("{s:s}", "error", "indexed attributes gave another result");
            }
        } else {
            got = json_pack("{s:s}", "compile_error", ei.message);
        }
        assign_experiment_free(e);
        assign_features_free(cc.features);
        json_t *want = json_pack("[O,O,O]", json_array_get(c, 3), json_array_get(c, 4),
                                 json_array_get(c, 5));
        check(&t, js_equal(got, want), json_string_value(json_array_get(c, 0)), got, want);
        json_decref(got);
        json_decref(want);
    }
    report(&t);
}

/* Field by field: the same variation, inclusion, hashing, reason and bucket. */
static int same_result(const struct assign_result *a, const struct assign_result *b)
{
    return a->variation == b->variation && a->in_experiment == b->in_experiment &&
           a->hash_used == b->hash_used && a->reason == b->reason &&
           (!a->hash_used || a->bucket == b->bucket) && a->hash_attribute == b->hash_attribute &&
           a->hash_value == b->hash_value;
}

/*
 * assign_run_many, which POST /v1/assign uses, against assign_run: every experiment of the run
 * section in one batch (hash versions 1 and 2, other hash attributes, filters, namespaces,
 * bandits mixed), in the context of every case, with and without indexed attributes.
 */
static void test_run_many(void **state)
{
    (void)state;
    const json_t *cases = section("run");
    size_t n = 0, checked = 0;
    struct assign_experiment **exps = calloc(json_array_size(cases), sizeof(*exps));
    size_t i;
    const json_t *c;
    json_array_foreach(cases, i, c)
    {
        const json_t *groups = json_object_get(json_array_get(c, 1), "savedGroups");
        struct ab_errinfo ei;
        if (assign_experiment_compile(json_array_get(c, 2), groups, &exps[n], &ei) == AB_OK)
            n++;
    }
    assert_true(n > 50);
    struct assign_result *one = calloc(n, sizeof(*one)), *many = calloc(n, sizeof(*many));
    json_array_foreach(cases, i, c)
    {
        struct case_ctx cc;
        context_of(json_array_get(c, 1), &cc);
        struct assign_attrs index;
        assign_attrs_index(&index, cc.ctx.attributes);
        for (int indexed = 0; indexed < 2; indexed++) {
            cc.ctx.index = indexed ? &index : NULL;
            for (size_t k = 0; k < n; k++)
                assign_run(exps[k], &cc.ctx, &one[k]);
            assign_run_many((const struct assign_experiment *const *)exps, n, &cc.ctx, many);
            for (size_t k = 0; k < n; k++, checked++)
                if (!same_result(&one[k], &many[k]))
                    fail_msg("case %s, experiment %zu: assign_run_many differs",
                             json_string_value(json_array_get(c, 0)), k);
        }
        assign_features_free(cc.features);
    }
    printf("run_many: %zu evaluations agree with assign_run\n", checked);
    for (size_t k = 0; k < n; k++)
        assign_experiment_free(exps[k]);
    free(exps);
    free(one);
    free(many);
}

static void test_feature(void **state)
{
    (void)state;
    struct tally t = {"feature", 0, 0};
    size_t i;
    const json_t *c;
    json_array_foreach(section("feature"), i, c)
    {
        struct case_ctx cc;
        context_of(json_array_get(c, 1), &cc);
        json_t *got = assign_features_eval(cc.features, json_string_value(json_array_get(c, 2)),
                                           &cc.ctx);
        check(&t, js_equal(got, json_array_get(c, 3)), json_string_value(json_array_get(c, 0)),
              got, json_array_get(c, 3));
        json_decref(got);
        assign_features_free(cc.features);
    }
    report(&t);
}

/*
 * Abacus's own vectors. Expected values were computed with the reference algorithm over UTF-16
 * code units (what the JavaScript SDK's charCodeAt loop does): "é" is the unit 0x00E9 (not the
 * UTF-8 bytes C3 A9), "😀" the surrogate pair D83D DE00, "中文" two units.
 */
static void test_own_vectors(void **state)
{
    (void)state;
    /* FNV-1a of single UTF-16 units, step by step */
    assert_int_equal(assign_fnv1a(ASSIGN_FNV_OFFSET, "", 0), 0x811c9dc5u);
    assert_int_equal(assign_fnv1a(ASSIGN_FNV_OFFSET, "a", 1), 0xe40c292cu);
    uint32_t e_acute = (0x811c9dc5u ^ 0xe9u) * 0x01000193u;
    assert_int_equal(assign_fnv1a(ASSIGN_FNV_OFFSET, "\xc3\xa9", 2), e_acute);
    uint32_t emoji = ((0x811c9dc5u ^ 0xd83du) * 0x01000193u ^ 0xde00u) * 0x01000193u;
    assert_int_equal(assign_fnv1a(ASSIGN_FNV_OFFSET, "\xf0\x9f\x98\x80", 4), emoji);
    uint32_t cjk = ((0x811c9dc5u ^ 0x4e2du) * 0x01000193u ^ 0x6587u) * 0x01000193u;
    assert_int_equal(assign_fnv1a(ASSIGN_FNV_OFFSET, "\xe4\xb8\xad\xe6\x96\x87", 6), cjk);

    /* hash values of non-ASCII ids, from the reference SDK itself: util.hash() of the npm
     * package @growthbook/growthbook 1.8.0, run by node 20 */
    struct {
        const char *seed, *value;
        int version;
        double want;
    } v[] = {
        {"checkout", "caf" "\xc3\xa9", 2, 0.9058},                      /* café, precomposed */
        {"checkout", "caf" "\xc3\xa9", 1, 0.776},
        {"checkout", "e\xcc\x81", 2, 0.9676},                        /* e + combining acute */
        {"checkout", "\xf0\x9f\x98\x80", 2, 0.3881},                 /* 😀, a surrogate pair */
        {"checkout", "\xe7\x94\xa8\xe6\x88\xb7\xe4\xb8\x80", 2, 0.8195}, /* 用户一 */
        {"layer", /* ünïcödé-ユーザー */
         "\xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9" "-" "\xe3\x83\xa6" "\xe3\x83\xbc"
         "\xe3\x82\xb6" "\xe3\x83\xbc",
         1, 0.81},
        {"checkout", "", 2, 0.295},                                  /* empty id */
        {"", "", 1, 0.261},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        double got = assign_hash(v[i].seed, strlen(v[i].seed), v[i].value, strlen(v[i].value),
                                 v[i].version);
        if (got != v[i].want)
            fprintf(stderr, "own vector %zu: got %.4f want %.4f\n", i, got, v[i].want);
        assert_true(got == v[i].want);
    }
    /* namespaces hash "__" + id with version 1: hash("__ns", "😀", 1) = 0.937 */
    assert_false(assign_in_namespace("\xf0\x9f\x98\x80", 4, "ns", 2, 0, 0.5));
    assert_true(assign_in_namespace("\xf0\x9f\x98\x80", 4, "ns", 2, 0.937, 0.938));
    /* a very long id: 100,000 characters hash without trouble and stay in [0, 1) */
    size_t n = 100000;
    char *long_id = malloc(n);
    memset(long_id, 'x', n);
    double h = assign_hash("s", 1, long_id, n, 2);
    assert_true(h >= 0 && h < 1);
    free(long_id);
    /* side by side (assign_hash_v2_many) equals one by one, for any count of seeds and for
     * texts of every kind, up to and past the length it decodes once (256 bytes) */
    char long_text[300];
    memset(long_text, 'u', sizeof(long_text));
    struct {
        const char *text;
        size_t len;
    } texts[] = {{"", 0},
                 {"user-12345", 10},
                 {"caf" "\xc3\xa9", 5},
                 {"\xf0\x9f\x98\x80-\xe4\xb8\xad\xe6\x96\x87", 11},
                 {long_text, 256},
                 {long_text, 257},
                 {long_text, sizeof(long_text)}};
    uint32_t states[9];
    for (size_t k = 0; k < 9; k++)
        states[k] = assign_fnv1a(ASSIGN_FNV_OFFSET, "seed-abcd", 4 + (k % 5)) ^ (uint32_t)k;
    for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
        for (size_t count = 0; count <= 9; count++) {
            double out[9];
            assign_hash_v2_many(states, count, texts[t].text, texts[t].len, out);
            for (size_t k = 0; k < count; k++)
                assert_true(out[k] == assign_hash_v2_from(states[k], texts[t].text, texts[t].len));
        }
    }
    /* the outer hash reads the inner one's digits without writing them: it must equal FNV over
     * its decimal text, for every count of digits and at every boundary (over "" the inner hash
     * is the state itself) and for a sweep of 2 million values */
    uint32_t edges[] = {0,          1,          9,          10,         99999999,   100000000,
                        100000001,  199999999,  999999999,  1000000000, 1000000001, 1099999999,
                        2147483647, 2147483648, 4199999999, 4200000000, 4294967294, 4294967295};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) + 2000000; i++) {
        uint32_t x = i < sizeof(edges) / sizeof(edges[0]) ? edges[i] : (uint32_t)i * 2654435761u;
        char dec[16];
        int len = snprintf(dec, sizeof(dec), "%u", x);
        uint32_t outer = assign_fnv1a(ASSIGN_FNV_OFFSET, dec, (size_t)len);
        if (assign_hash_v2_from(x, "", 0) != (double)(outer % 10000) / 10000)
            fail_msg("outer hash of %u", x);
    }
    /* unknown hash versions give null (-1), never a bucket */
    assert_true(assign_hash("s", 1, "u", 1, 3) < 0);
    assert_true(assign_hash("s", 1, "u", 1, 0) < 0);
    /* boundaries: a range includes its start and excludes its end */
    struct assign_range r[2] = {{0, 0.5}, {0.5, 1}};
    assert_int_equal(assign_choose_variation(0.0, r, 2), 0);
    assert_int_equal(assign_choose_variation(0.5, r, 2), 1);
    assert_int_equal(assign_choose_variation(1.0, r, 2), -1);
    assert_int_equal(assign_choose_variation(0.4999, r, 2), 0);
    /* raising coverage only adds units: every range at coverage c lies inside the one at 1 */
    struct assign_range lo[3], hi[3];
    double w[3] = {0.2, 0.3, 0.5};
    assign_bucket_ranges(3, 0.3, w, 3, lo);
    assign_bucket_ranges(3, 1.0, w, 3, hi);
    for (int i = 0; i < 3; i++)
        assert_true(lo[i].start == hi[i].start && lo[i].end <= hi[i].end);
}

/* JavaScript's String(number) for attribute values that are hashed. */
static void test_attr_text(void **state)
{
    (void)state;
    struct {
        json_t *v;
        const char *want;
    } c[] = {
        {json_integer(123), "123"},      {json_real(1.5), "1.5"},
        {json_real(0.1), "0.1"},         {json_real(1e21), "1e+21"},
        {json_real(1.5e-7), "1.5e-7"},   {json_real(123456789.125), "123456789.125"},
        {json_real(-2.0), "-2"},         {json_true(), "true"},
        {json_string("u1"), "u1"},       {json_real(0.000001), "0.000001"},
        /* JavaScript reads every JSON number as a double: past 2^53 the digits are its own */
        {json_integer(9007199254740993LL), "9007199254740992"},
        {json_integer(1152921504606846976LL), "1152921504606847000"},
        {json_real(123456789012345677877.0), "123456789012345680000"},
        {json_real(-1234567.0), "-1234567"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char buf[32];
        size_t len;
        const char *got = assign_attr_text(c[i].v, buf, &len);
        assert_non_null(got);
        assert_int_equal(len, strlen(c[i].want));
        assert_memory_equal(got, c[i].want, len);
        json_decref(c[i].v);
    }
    json_t *empty[] = {json_null(), json_false(), json_integer(0), json_string(""), json_real(0)};
    for (size_t i = 0; i < 5; i++) {
        char buf[32];
        size_t len;
        assert_null(assign_attr_text(empty[i], buf, &len));
        json_decref(empty[i]);
    }
    char buf[32];
    size_t len;
    assert_null(assign_attr_text(NULL, buf, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),           cmocka_unit_test(test_bucket_range),
        cmocka_unit_test(test_choose_variation), cmocka_unit_test(test_in_namespace),
        cmocka_unit_test(test_equal_weights),  cmocka_unit_test(test_eval_condition),
        cmocka_unit_test(test_run),            cmocka_unit_test(test_feature),
        cmocka_unit_test(test_own_vectors),    cmocka_unit_test(test_attr_text),
        cmocka_unit_test(test_run_many),
    };
    return cmocka_run_group_tests(tests, load_cases, free_cases);
}
