/*
 * The property that makes the sequential test worth having: an experimenter who looks at the
 * results every day must not be fooled more often than alpha. A seeded simulation of 2,000 A/A
 * experiments, each looked at after every one of 30 daily batches, counts how many are ever
 * declared significant by the always-valid test (must stay within alpha + 2 standard errors) and
 * by the naive fixed-horizon test (printed: far above alpha). A second simulation with a true
 * effect checks that the confidence sequence covers it at every look in at least 95% of runs.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "stats.h"

#define EXPERIMENTS 2000
#define DAYS 30
#define UNITS_PER_DAY 100 /* per arm */
#define ALPHA 0.05
#define NSTAR 5000

/* splitmix64: a small seeded generator, so the run is the same everywhere */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return ((double)(next(s) >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

/* A skewed metric (revenue-like): lognormal, by Box-Muller. */
static double draw(uint64_t *s, double shift)
{
    double n = sqrt(-2 * log(uniform(s))) * cos(2 * M_PI * uniform(s));
    return exp(1 + 0.8 * n) + shift;
}

struct outcome {
    int seq_significant, naive_significant, covered;
};

static struct outcome run(uint64_t *rng, double effect)
{
    struct analyze_sums arm[2];
    memset(arm, 0, sizeof(arm));
    struct outcome o = {0, 0, 1};
    double p_min = 1;
    for (int day = 0; day < DAYS; day++) {
        for (int a = 0; a < 2; a++) {
            for (int u = 0; u < UNITS_PER_DAY; u++) {
                double y = draw(rng, a == 1 ? effect : 0);
                arm[a].n += 1;
                arm[a].sum_y += y;
                arm[a].sum_yy += y * y;
            }
        }
        struct analyze_moments ma = analyze_mean_moments(&arm[0]),
                               mb = analyze_mean_moments(&arm[1]);
        struct analyze_estimate e;
        analyze_welch(&ma, &mb, 0, ALPHA, &e);
        analyze_sequential(ma.n + mb.n, NSTAR, ALPHA, &e);
        assert_true(e.ok);
        p_min = fmin(p_min, e.p_seq); /* the running minimum, as the results report it */
        o.seq_significant |= p_min < ALPHA;
        o.naive_significant |= e.p < ALPHA;
        o.covered &= e.seq_lo <= effect && effect <= e.seq_hi;
    }
    return o;
}

static void test_peeking(void **state)
{
    (void)state;
    uint64_t rng = 20261124;
    int seq = 0, naive = 0;
    for (int i = 0; i < EXPERIMENTS; i++) {
        struct outcome o = run(&rng, 0);
        seq += o.seq_significant;
        naive += o.naive_significant;
    }
    double se = sqrt(ALPHA * (1 - ALPHA) / EXPERIMENTS);
    double seq_rate = (double)seq / EXPERIMENTS, naive_rate = (double)naive / EXPERIMENTS;
    printf("A/A, %d experiments x %d daily looks: ever significant: sequential %.4f, naive "
           "fixed-horizon %.4f (alpha %.2f, bound alpha + 2 SE = %.4f)\n",
           EXPERIMENTS, DAYS, seq_rate, naive_rate, ALPHA, ALPHA + 2 * se);
    assert_true(seq_rate <= ALPHA + 2 * se);
    assert_true(naive_rate > 2 * ALPHA); /* the harness does see what peeking does */

    int covered = 0;
    const double effect = 0.3; /* on a mean of about 3.7 */
    for (int i = 0; i < EXPERIMENTS; i++)
        covered += run(&rng, effect).covered;
    double coverage = (double)covered / EXPERIMENTS;
    printf("true effect %.2f: the sequential interval covered it at every look in %.4f of "
           "%d experiments (need >= 0.95)\n",
           effect, coverage, EXPERIMENTS);
    assert_true(coverage >= 0.95);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_peeking)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
