/*
 * The statistics of the analysis: pure functions over sufficient statistics (n, sums, sums of
 * squares and cross sums), no I/O and no allocation. The aggregation (sql.c with units.c, or
 * clickhouse.c) produces the sums; results.c turns these functions' answers into the results
 * JSON. Each
 * function names the formula it implements; docs/statistics.md collects them with sources.
 * Degenerate input never yields NaN or infinity: functions report "not computable" instead.
 */
#ifndef ABACUS_ANALYZE_STATS_H
#define ABACUS_ANALYZE_STATS_H

#include <stddef.h>

/* --- distributions ----------------------------------------------------------------------- */

double analyze_normal_cdf(double x);
/* The x with normal_cdf(x) = p, for p in (0, 1). */
double analyze_normal_quantile(double p);
/* Student's t with df > 0 degrees of freedom (df may be fractional, as Welch's are). */
double analyze_t_cdf(double t, double df);
double analyze_t_quantile(double p, double df);
/* P(X > x) for X chi-square with k > 0 degrees of freedom. */
double analyze_chi2_sf(double x, double k);

/* --- one arm ----------------------------------------------------------------------------- */

/*
 * The unit-level moments of one arm for one metric: the mean the comparison is about and the
 * variance of one unit's contribution, so that var / n is the variance of mean.
 */
struct analyze_moments {
    double n;    /* units */
    double mean;
    double var;  /* unit-level variance (n - 1 denominator for means) */
};

/* Sufficient statistics of one arm: n units with values y (and covariate or denominator x). */
struct analyze_sums {
    double n;
    double sum_y, sum_yy; /* the metric (a ratio metric's numerator) */
    double sum_x, sum_xx; /* CUPED: pre-exposure value; ratio: the denominator */
    double sum_xy;
};

/* Mean metric: mean = sum/n, var = (sumsq - sum^2/n) / (n - 1). */
struct analyze_moments analyze_mean_moments(const struct analyze_sums *s);
/* Binomial metric (values 0/1): p = sum/n, var = p (1 - p). */
struct analyze_moments analyze_proportion_moments(const struct analyze_sums *s);
/*
 * Ratio metric sum(y)/sum(x) by the delta method (Deng, Knoblich, Lu, "Applying the delta method
 * in metric analytics", KDD 2018, eq. 4): n var = v_y/mu_x^2 - 2 mu_y c_xy/mu_x^3 +
 * mu_y^2 v_x/mu_x^4. Returns 0, or -1 when mu_x is 0 (not computable).
 */
int analyze_ratio_moments(const struct analyze_sums *s, struct analyze_moments *out);

/*
 * CUPED (Deng, Xu, Kohavi, Walker, WSDM 2013, eq. 3 and 4): theta = pooled within-arm
 * Cov(Y, X) / Var(X) over arms[0..narms), the OLS slope of Y on a centred X with one intercept per
 * arm. Returns 0 with *theta, or -1 when X has no within-arm variance.
 */
int analyze_cuped_theta(const struct analyze_sums *arms, size_t narms, double *theta);
/*
 * The arm's moments of Y' = Y - theta (X - mean_x), mean_x the mean of X over all arms:
 * mean' = mean_y - theta (mean_x_arm - mean_x), var' = v_y + theta^2 v_x - 2 theta c_xy.
 */
struct analyze_moments analyze_cuped_moments(const struct analyze_sums *s, double theta,
                                             double mean_x);

/* --- comparisons ------------------------------------------------------------------------- */

/* An estimate of treatment versus control, with a fixed-horizon and an always-valid analysis. */
struct analyze_estimate {
    int ok;               /* 0: not computable (empty arm, zero variance, zero baseline) */
    double estimate;      /* difference or relative lift */
    double se;
    double df;            /* Welch degrees of freedom; 0 for a normal (z) test */
    double ci_lo, ci_hi;  /* fixed horizon, 1 - alpha */
    double p;             /* fixed horizon, two-sided */
    double seq_lo, seq_hi; /* always-valid confidence sequence, 1 - alpha */
    double p_seq;         /* always-valid p-value at this look (not yet the running minimum) */
};

/*
 * Welch's t-test of mean(b) - mean(a) (absolute) or mean(b)/mean(a) - 1 (relative, delta-method
 * variance v_b/(n_b m_a^2) + m_b^2 v_a/(n_a m_a^4)), with Welch-Satterthwaite degrees of freedom
 * (v_b/n_b + v_a/n_a)^2 / (v_b^2/(n_b^2 (n_b - 1)) + v_a^2/(n_a^2 (n_a - 1))). Fills the
 * fixed-horizon fields of *out; the sequential ones are set by analyze_sequential.
 */
void analyze_welch(const struct analyze_moments *a, const struct analyze_moments *b, int relative,
                   double alpha, struct analyze_estimate *out);

/*
 * Only the estimate and SE of analyze_welch (absolute or relative), without a test: what the
 * daily series needs before analyze_sequential. out->ok says whether they are computable.
 */
void analyze_difference(const struct analyze_moments *a, const struct analyze_moments *b,
                        int relative, struct analyze_estimate *out);

/*
 * The two-proportion z-test: p-value from z = (p_b - p_a) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with
 * the pooled p; the estimate's SE and interval unpooled (absolute) or by the delta method
 * (relative), with normal quantiles.
 */
void analyze_ztest_proportions(const struct analyze_moments *a, const struct analyze_moments *b,
                               int relative, double alpha, struct analyze_estimate *out);

/*
 * rho of the normal-mixture confidence sequence tuned for N* units (Howard, Ramdas, McAuliffe,
 * Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 2021,
 * eq. 14): rho = sqrt((-2 ln alpha + ln(-2 ln alpha + 1)) / N*).
 */
double analyze_mixture_rho(double alpha, double nstar);

/*
 * The always-valid interval and p-value of out->estimate and out->se after N units in total, for
 * two-sided alpha and tuning N*. With s^2 = se^2 N: half-width
 * s sqrt(2 (N rho^2 + 1) / (N^2 rho^2) ln(sqrt(N rho^2 + 1) / alpha)); p = min(1, 1/E) with
 * E = exp(rho^2 z2 / (2 (N rho^2 + 1))) / sqrt(N rho^2 + 1), z2 = estimate^2 N / se^2 (the
 * mixture likelihood ratio of Johari, Pekelis, Walsh, "Always valid inference", Oper. Res. 2022,
 * eq. 11, with mixing variance rho^2). Leaves out untouched when !out->ok.
 */
void analyze_sequential(double n_total, double nstar, double alpha, struct analyze_estimate *out);

/*
 * Sample ratio mismatch: Pearson's chi-square of observed[0..k) against expected shares
 * weights (arms with weight 0 are left out), k' - 1 degrees of freedom. Returns 0 with *chi2
 * and *p, or -1 when fewer than two arms have weight or nothing was observed.
 */
int analyze_srm(const double *observed, const double *weights, size_t k, double *chi2, double *p);

/*
 * Adjusted p-values over p[0..n) into adj[0..n) (may alias p): Holm's step-down (family-wise
 * error; Holm 1979) or Benjamini-Hochberg's step-up (false discovery rate; BH 1995).
 */
void analyze_holm(const double *p, size_t n, double *adj);
void analyze_bh(const double *p, size_t n, double *adj);

#endif
