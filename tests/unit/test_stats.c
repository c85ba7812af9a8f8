/*
 * analyze/stats.c against published check numbers (tests/data/statistics-checks.json, to their
 * printed precision) and against scipy/statsmodels on seeded datasets
 * (tests/data/statistics-reference.json, to 1e-6 relative), plus degenerate input.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "stats.h"

static json_t *load(const char *name)
{
    const char *dir = getenv("ABACUS_TEST_DATA");
    char path[1024];
    json_error_t err;
    assert_non_null(dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL)
        fail_msg("%s: %s", path, err.text);
    return doc;
}

static double num(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        fail_msg("fixture: %s is not a number", key);
    return json_number_value(v);
}

/* |got - want| within half a unit of the 5th decimal: the check numbers' printed precision. */
static void near5(const char *what, double got, double want)
{
    if (!(fabs(got - want) <= 0.5e-5 + 1e-12))
        fail_msg("%s: got %.8f, want %.5f", what, got, want);
}

static void near_rel(const char *what, double got, double want)
{
    double tol = 1e-6 * fmax(fabs(want), 1e-300);
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.12g, want %.12g (1e-6 relative)", what, got, want);
}

/* [sum, sumsq, n] of the check file -> moments of its metric type */
static struct analyze_moments moments_of(const json_t *arr, const char *type)
{
    struct analyze_sums s = {.n = json_number_value(json_array_get(arr, 2)),
                             .sum_y = json_number_value(json_array_get(arr, 0)),
                             .sum_yy = json_number_value(json_array_get(arr, 1))};
    return strcmp(type, "binomial") == 0 ? analyze_proportion_moments(&s)
                                         : analyze_mean_moments(&s);
}

static void test_check_numbers(void **state)
{
    (void)state;
    json_t *doc = load("statistics-checks.json");
    double alpha = num(doc, "alpha");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "two_sided"), i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type"));
        struct analyze_moments a = moments_of(json_object_get(c, "a"), type);
        struct analyze_moments b = moments_of(json_object_get(c, "b"), type);
        struct analyze_estimate e;
        analyze_welch(&a, &b, json_is_true(json_object_get(c, "relative")), alpha, &e);
        assert_true(e.ok);
        near5("estimate", e.estimate, num(c, "estimate"));
        near5("se", e.se, num(c, "se"));
        near5("ci low", e.ci_lo, json_number_value(json_array_get(json_object_get(c, "ci"), 0)));
        near5("ci high", e.ci_hi, json_number_value(json_array_get(json_object_get(c, "ci"), 1)));
        near5("p", e.p, num(c, "p"));
        printf("two-sided %s: ok\n", json_string_value(json_object_get(c, "case")));
    }
    json_array_foreach(json_object_get(doc, "sequential"), i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type"));
        struct analyze_moments a = moments_of(json_object_get(c, "a"), type);
        struct analyze_moments b = moments_of(json_object_get(c, "b"), type);
        struct analyze_estimate e;
        analyze_welch(&a, &b, 1, alpha, &e);
        analyze_sequential(a.n + b.n, num(c, "nstar"), alpha, &e);
        assert_true(e.ok);
        near5("estimate", e.estimate, num(c, "estimate"));
        near5("se", e.se, num(c, "se"));
        near5("seq low", e.seq_lo, json_number_value(json_array_get(json_object_get(c, "ci"), 0)));
        near5("seq high", e.seq_hi,
              json_number_value(json_array_get(json_object_get(c, "ci"), 1)));
        if (json_object_get(c, "p") != NULL)
            near5("p", e.p_seq, num(c, "p"));
        else
            assert_true(e.p_seq < num(c, "p_below"));
        printf("sequential %s: ok\n", json_string_value(json_object_get(c, "case")));
    }
    const json_t *rho = json_object_get(doc, "rho");
    double r = analyze_mixture_rho(num(rho, "alpha"), num(rho, "nstar"));
    if (!(fabs(r - num(rho, "rho")) <= 0.5e-8))
        fail_msg("rho: got %.10f", r);
    const json_t *hw = json_object_get(doc, "half_width_over_se");
    json_array_foreach(json_object_get(hw, "points"), i, c)
    {
        struct analyze_estimate e = {.ok = 1, .estimate = 0, .se = 1};
        analyze_sequential(json_number_value(json_array_get(c, 0)), num(hw, "nstar"),
                           num(hw, "alpha"), &e);
        double want = json_number_value(json_array_get(c, 1));
        if (!(fabs(e.seq_hi - want) <= 0.5e-6))
            fail_msg("half-width/SE at N=%g: got %.7f, want %.6f",
                     json_number_value(json_array_get(c, 0)), e.seq_hi, want);
    }
    json_decref(doc);
}

static struct analyze_sums sums_of(const json_t *o)
{
    struct analyze_sums s = {num(o, "n"), num(o, "sum_y"), num(o, "sum_yy"), 0, 0, 0};
    if (json_object_get(o, "sum_x") != NULL) {
        s.sum_x = num(o, "sum_x");
        s.sum_xx = num(o, "sum_xx");
        s.sum_xy = num(o, "sum_xy");
    }
    return s;
}

static void test_reference_tools(void **state)
{
    (void)state;
    json_t *doc = load("statistics-reference.json");
    double alpha = num(doc, "alpha");
    size_t i, checked = 0;
    json_t *c;
    json_array_foreach(json_object_get(doc, "welch"), i, c)
    {
        struct analyze_sums sa = sums_of(json_object_get(c, "a")),
                            sb = sums_of(json_object_get(c, "b"));
        struct analyze_moments a = analyze_mean_moments(&sa), b = analyze_mean_moments(&sb);
        struct analyze_estimate e;
        analyze_welch(&a, &b, 0, alpha, &e);
        assert_true(e.ok);
        near_rel("welch estimate", e.estimate, num(c, "estimate"));
        near_rel("welch se", e.se, num(c, "se"));
        near_rel("welch df", e.df, num(c, "df"));
        near_rel("welch p", e.p, num(c, "p"));
        near_rel("welch ci low", e.ci_lo, json_number_value(json_array_get(json_object_get(c, "ci"), 0)));
        near_rel("welch ci high", e.ci_hi, json_number_value(json_array_get(json_object_get(c, "ci"), 1)));
        checked++;
    }
    json_array_foreach(json_object_get(doc, "srm"), i, c)
    {
        double obs[8], w[8], chi2, p;
        size_t k = json_array_size(json_object_get(c, "observed"));
        for (size_t j = 0; j < k; j++) {
            obs[j] = json_number_value(json_array_get(json_object_get(c, "observed"), j));
            w[j] = json_number_value(json_array_get(json_object_get(c, "weights"), j));
        }
        assert_int_equal(analyze_srm(obs, w, k, &chi2, &p), 0);
        near_rel("srm chi2", chi2, num(c, "chi2"));
        near_rel("srm p", p, num(c, "p"));
        checked++;
    }
    json_array_foreach(json_object_get(doc, "cuped"), i, c)
    {
        struct analyze_sums arms[2] = {sums_of(json_object_get(c, "a")),
                                       sums_of(json_object_get(c, "b"))};
        double theta;
        assert_int_equal(analyze_cuped_theta(arms, 2, &theta), 0);
        near_rel("cuped theta", theta, num(c, "theta"));
        double mean_x = (arms[0].sum_x + arms[1].sum_x) / (arms[0].n + arms[1].n);
        struct analyze_moments a = analyze_cuped_moments(&arms[0], theta, mean_x);
        struct analyze_moments b = analyze_cuped_moments(&arms[1], theta, mean_x);
        struct analyze_estimate e;
        analyze_welch(&a, &b, 0, alpha, &e);
        near_rel("cuped estimate (OLS treatment coefficient)", e.estimate, num(c, "estimate"));
        near_rel("cuped se", e.se, num(c, "se"));
        near_rel("cuped p", e.p, num(c, "p"));
        checked++;
    }
    const json_t *m = json_object_get(doc, "multiple");
    size_t n = json_array_size(json_object_get(m, "p"));
    double p[16], holm[16], bh[16];
    for (size_t j = 0; j < n; j++)
        p[j] = json_number_value(json_array_get(json_object_get(m, "p"), j));
    analyze_holm(p, n, holm);
    analyze_bh(p, n, bh);
    for (size_t j = 0; j < n; j++) {
        near_rel("holm", holm[j], json_number_value(json_array_get(json_object_get(m, "holm"), j)));
        near_rel("bh", bh[j], json_number_value(json_array_get(json_object_get(m, "bh"), j)));
    }
    json_array_foreach(json_object_get(doc, "t_quantile"), i, c)
        near_rel("t quantile", analyze_t_quantile(num(c, "p"), num(c, "df")), num(c, "t"));
    json_array_foreach(json_object_get(doc, "t_cdf"), i, c)
        near_rel("t cdf", analyze_t_cdf(num(c, "t"), num(c, "df")), num(c, "cdf"));
    json_array_foreach(json_object_get(doc, "chi2_sf"), i, c)
        near_rel("chi2 sf", analyze_chi2_sf(num(c, "x"), num(c, "k")), num(c, "sf"));
    json_array_foreach(json_object_get(doc, "normal_quantile"), i, c)
        near_rel("normal quantile", analyze_normal_quantile(num(c, "p")), num(c, "x"));
    printf("reference tools: %zu datasets and every distribution value agree to 1e-6\n", checked);
    json_decref(doc);
}

/* Empty arms, zero variance, all zeros, a zero baseline: not computable, never NaN or Inf. */
static void test_degenerate(void **state)
{
    (void)state;
    struct analyze_sums empty = {0}, one = {1, 5, 25, 0, 0, 0}, zeros = {100, 0, 0, 0, 0, 0},
                        constant = {50, 150, 450, 0, 0, 0}, fine = {100, 120, 300, 0, 0, 0};
    const struct analyze_sums *cases[][2] = {{&empty, &fine}, {&fine, &empty}, {&one, &fine},
                                             {&zeros, &zeros}, {&constant, &constant},
                                             {&zeros, &fine}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int rel = 0; rel < 2; rel++) {
            struct analyze_moments a = analyze_mean_moments(cases[i][0]),
                                   b = analyze_mean_moments(cases[i][1]);
            struct analyze_estimate e;
            analyze_welch(&a, &b, rel, 0.05, &e);
            analyze_sequential(a.n + b.n, 5000, 0.05, &e);
            if (i < 5 || rel == 1) /* zeros vs fine is computable in absolute terms */
                assert_false(e.ok);
            assert_true(isfinite(e.estimate) && isfinite(e.se) && isfinite(e.p) &&
                        isfinite(e.seq_lo) && isfinite(e.p_seq));
            a = analyze_proportion_moments(cases[i][0]);
            b = analyze_proportion_moments(cases[i][1]);
            analyze_ztest_proportions(&a, &b, rel, 0.05, &e);
            assert_true(isfinite(e.estimate) && isfinite(e.se) && isfinite(e.p));
        }
    }
    struct analyze_moments r;
    struct analyze_sums no_denominator = {10, 5, 5, 0, 0, 0};
    assert_int_equal(analyze_ratio_moments(&no_denominator, &r), -1);
    double theta, chi2, p;
    struct analyze_sums flat[2] = {{10, 5, 5, 10, 10, 5}, {10, 6, 6, 10, 10, 6}};
    assert_int_equal(analyze_cuped_theta(flat, 2, &theta), -1); /* x constant within arms */
    double obs[2] = {0, 0}, w[2] = {0.5, 0.5}, w1[2] = {1, 0};
    assert_int_equal(analyze_srm(obs, w, 2, &chi2, &p), -1);
    obs[0] = 10;
    assert_int_equal(analyze_srm(obs, w1, 2, &chi2, &p), -1);
    /* a huge effect: the always-valid p-value underflows to 0, not NaN */
    struct analyze_estimate big = {.ok = 1, .estimate = 1e6, .se = 1e-6};
    analyze_sequential(1e6, 5000, 0.05, &big);
    assert_true(big.ok && big.p_seq == 0);
}

/* The z-test: p from the pooled SE, interval from the unpooled one, as scipy's norm gives. */
static void test_ztest(void **state)
{
    (void)state;
    struct analyze_sums sa = {1000, 100, 100, 0, 0, 0}, sb = {1000, 130, 130, 0, 0, 0};
    struct analyze_moments a = analyze_proportion_moments(&sa), b = analyze_proportion_moments(&sb);
    struct analyze_estimate e;
    analyze_ztest_proportions(&a, &b, 0, 0.05, &e);
    assert_true(e.ok);
    double pooled = 0.115, z = 0.03 / sqrt(pooled * (1 - pooled) * 0.002);
    near_rel("z p", e.p, erfc(z / sqrt(2)));
    near_rel("z se", e.se, sqrt(0.1 * 0.9 / 1000 + 0.13 * 0.87 / 1000));
    near_rel("z ci", e.ci_hi - e.estimate, 1.959963984540054 * e.se);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_numbers), cmocka_unit_test(test_reference_tools),
        cmocka_unit_test(test_degenerate), cmocka_unit_test(test_ztest)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
