/*
 * Statistics over sufficient statistics (see stats.h for each formula and its source). The
 * special functions are computed here rather than taken from a library: the regularized
 * incomplete beta function by its continued fraction (DLMF 8.17.22) for Student's t, the
 * regularized incomplete gamma function by its series (DLMF 8.11.4) and continued fraction
 * (DLMF 8.9.2) for chi-square, and normal quantiles refined by Halley's method.
 */
#include "stats.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CF_EPS 1e-15
#define CF_TINY 1e-300
#define CF_MAX_ITER 500

/* Marks e computable when every number is finite, else clears it: no NaN or Inf leaves here. */
static void finish(struct analyze_estimate *e)
{
    e->ok = isfinite(e->estimate) && isfinite(e->se) && isfinite(e->ci_lo) &&
            isfinite(e->ci_hi) && isfinite(e->p) && isfinite(e->df);
    if (!e->ok)
        memset(e, 0, sizeof(*e));
}

/* --- distributions ----------------------------------------------------------------------- */

double analyze_normal_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

double analyze_normal_quantile(double p)
{
    if (!(p > 0 && p < 1))
        return p <= 0 ? -INFINITY : INFINITY;
    if (p == 0.5)
        return 0;
    /* start: Abramowitz and Stegun 26.2.23 (|error| < 4.5e-4), for the lower tail */
    double q = p < 0.5 ? p : 1 - p;
    double t = sqrt(-2 * log(q));
    double x = t - (2.515517 + t * (0.802853 + t * 0.010328)) /
                       (1 + t * (1.432788 + t * (0.189269 + t * 0.001308)));
    if (p < 0.5)
        x = -x;
    /* Halley's method on cdf(x) - p */
    for (int i = 0; i < 4; i++) {
        double e = analyze_normal_cdf(x) - p;
        double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
        x -= u / (1 + x * u / 2);
    }
    return x;
}

/* Lentz's evaluation of 1 / (1 + d1 / (1 + d2 / (1 + ...))) for the incomplete beta (DLMF
 * 8.17.22), where d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)), d(2m) = m(b-m)x / ((a+2m-1)(a+2m)). */
static double beta_cf(double a, double b, double x)
{
    double f = CF_TINY, c = f, d = 0;
    for (int j = 1; j <= 2 * CF_MAX_ITER; j++) {
        double num;
        if (j == 1) {
            num = 1;
        } else {
            int k = j - 1; /* d_k */
            int m = k / 2;
            num = k % 2 == 1 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                             : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        }
        d = 1 + num * d;
        if (fabs(d) < CF_TINY)
            d = CF_TINY;
        c = 1 + num / c;
        if (fabs(c) < CF_TINY)
            c = CF_TINY;
        d = 1 / d;
        double delta = c * d;
        f *= delta;
        if (fabs(delta - 1) < CF_EPS)
            break;
    }
    return f;
}

/* The regularized incomplete beta function I_x(a, b). */
static double inc_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b)));
    if (x < (a + 1) / (a + b + 2))
        return front * beta_cf(a, b, x) / a;
    return 1 - front * beta_cf(b, a, 1 - x) / b;
}

/* P(|T| > t) for t >= 0: I_{df/(df+t^2)}(df/2, 1/2), without cancellation for small values. */
static double t_two_sided(double t, double df)
{
    return inc_beta(df / 2, 0.5, df / (df + t * t));
}

double analyze_t_cdf(double t, double df)
{
    double tail = 0.5 * t_two_sided(fabs(t), df);
    return t > 0 ? 1 - tail : tail;
}

static double t_pdf(double t, double df)
{
    return exp(lgamma((df + 1) / 2) - lgamma(df / 2) - 0.5 * log(df * M_PI) -
               (df + 1) / 2 * log1p(t * t / df));
}

double analyze_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1))
        return p <= 0 ? -INFINITY : INFINITY;
    if (p == 0.5)
        return 0;
    double q = p < 0.5 ? p : 1 - p; /* upper tail probability of the positive quantile */
    double lo = 0, hi = INFINITY;
    double t = fabs(analyze_normal_quantile(q));
    for (int i = 0; i < 200; i++) {
        double f = 0.5 * t_two_sided(t, df) - q; /* decreasing in t */
        if (f > 0)
            lo = t;
        else
            hi = t;
        double next = t + f / t_pdf(t, df); /* Newton: d/dt tail = -pdf */
        if (!(next > lo && next < hi)) /* keep inside the bracket: bisect (or double) */
            next = isfinite(hi) ? (lo + hi) / 2 : 2 * t + 1;
        if (fabs(next - t) <= 1e-15 * fabs(t))
            break;
        t = next;
    }
    return p < 0.5 ? -t : t;
}

/* Q(a, x), the regularized upper incomplete gamma function. */
static double gamma_q(double a, double x)
{
    if (x <= 0)
        return 1;
    double lfront = -x + a * log(x) - lgamma(a);
    if (x < a + 1) { /* series for P (DLMF 8.11.4) */
        double term = 1 / a, sum = term;
        for (int n = 1; n < CF_MAX_ITER * 4; n++) {
            term *= x / (a + n);
            sum += term;
            if (fabs(term) < fabs(sum) * CF_EPS)
                break;
        }
        return 1 - sum * exp(lfront);
    }
    /* continued fraction for Q (DLMF 8.9.2), by Lentz's method */
    double b = x + 1 - a, c = 1 / CF_TINY, d = 1 / b, f = d;
    for (int n = 1; n < CF_MAX_ITER; n++) {
        double an = -n * (n - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < CF_TINY)
            d = CF_TINY;
        c = b + an / c;
        if (fabs(c) < CF_TINY)
            c = CF_TINY;
        d = 1 / d;
        double delta = d * c;
        f *= delta;
        if (fabs(delta - 1) < CF_EPS)
            break;
    }
    return exp(lfront) * f;
}

double analyze_chi2_sf(double x, double k)
{
    return gamma_q(k / 2, x / 2);
}

/* --- one arm ----------------------------------------------------------------------------- */

/* Sample (co)variance from sums, n - 1 denominator; 0 below two units. */
static double covariance(double n, double sum_a, double sum_b, double sum_ab)
{
    if (n < 2)
        return 0;
    return (sum_ab - sum_a * sum_b / n) / (n - 1);
}

struct analyze_moments analyze_mean_moments(const struct analyze_sums *s)
{
    struct analyze_moments m = {s->n, 0, 0};
    if (s->n > 0)
        m.mean = s->sum_y / s->n;
    double v = covariance(s->n, s->sum_y, s->sum_y, s->sum_yy);
    m.var = v > 0 ? v : 0; /* rounding can make a zero variance slightly negative */
    return m;
}

struct analyze_moments analyze_proportion_moments(const struct analyze_sums *s)
{
    struct analyze_moments m = {s->n, 0, 0};
    if (s->n > 0) {
        m.mean = s->sum_y / s->n;
        m.var = m.mean * (1 - m.mean);
    }
    return m;
}

int analyze_ratio_moments(const struct analyze_sums *s, struct analyze_moments *out)
{
    *out = (struct analyze_moments){s->n, 0, 0};
    if (s->n < 1 || s->sum_x == 0)
        return -1;
    double mx = s->sum_x / s->n, my = s->sum_y / s->n;
    double vy = covariance(s->n, s->sum_y, s->sum_y, s->sum_yy);
    double vx = covariance(s->n, s->sum_x, s->sum_x, s->sum_xx);
    double cxy = covariance(s->n, s->sum_x, s->sum_y, s->sum_xy);
    out->mean = my / mx;
    double v = vy / (mx * mx) - 2 * my * cxy / (mx * mx * mx) + my * my * vx / (mx * mx * mx * mx);
    out->var = v > 0 ? v : 0;
    return 0;
}

int analyze_cuped_theta(const struct analyze_sums *arms, size_t narms, double *theta)
{
    double sxx = 0, sxy = 0;
    for (size_t i = 0; i < narms; i++) {
        if (arms[i].n < 1)
            continue;
        sxx += arms[i].sum_xx - arms[i].sum_x * arms[i].sum_x / arms[i].n;
        sxy += arms[i].sum_xy - arms[i].sum_x * arms[i].sum_y / arms[i].n;
    }
    double scale = 0;
    for (size_t i = 0; i < narms; i++)
        scale += arms[i].sum_xx;
    if (!(sxx > scale * 1e-12) || !isfinite(sxy))
        return -1;
    *theta = sxy / sxx;
    return 0;
}

struct analyze_moments analyze_cuped_moments(const struct analyze_sums *s, double theta,
                                             double mean_x)
{
    struct analyze_moments m = analyze_mean_moments(s);
    if (s->n < 1)
        return m;
    m.mean -= theta * (s->sum_x / s->n - mean_x);
    double vx = covariance(s->n, s->sum_x, s->sum_x, s->sum_xx);
    double cxy = covariance(s->n, s->sum_x, s->sum_y, s->sum_xy);
    double v = m.var + theta * theta * vx - 2 * theta * cxy;
    m.var = v > 0 ? v : 0;
    return m;
}

/* --- comparisons ------------------------------------------------------------------------- */

/* Estimate and SE of b versus a: difference, or relative lift by the delta method. */
static int difference(const struct analyze_moments *a, const struct analyze_moments *b,
                      int relative, double *est, double *se)
{
    if (a->n < 2 || b->n < 2)
        return -1;
    double e, s;
    if (!relative) {
        e = b->mean - a->mean;
        s = sqrt(b->var / b->n + a->var / a->n);
    } else {
        if (a->mean == 0)
            return -1;
        double ma2 = a->mean * a->mean;
        e = b->mean / a->mean - 1;
        s = sqrt(b->var / (b->n * ma2) + b->mean * b->mean * a->var / (a->n * ma2 * ma2));
    }
    if (!(s > 0 && isfinite(s) && isfinite(e)))
        return -1;
    *est = e;
    *se = s;
    return 0;
}

void analyze_difference(const struct analyze_moments *a, const struct analyze_moments *b,
                        int relative, struct analyze_estimate *out)
{
    memset(out, 0, sizeof(*out));
    out->ok = difference(a, b, relative, &out->estimate, &out->se) == 0;
}

void analyze_welch(const struct analyze_moments *a, const struct analyze_moments *b, int relative,
                   double alpha, struct analyze_estimate *out)
{
    memset(out, 0, sizeof(*out));
    if (difference(a, b, relative, &out->estimate, &out->se) != 0)
        return;
    double qa = a->var / a->n, qb = b->var / b->n;
    double den = qb * qb / (b->n - 1) + qa * qa / (a->n - 1);
    if (!(den > 0 && isfinite(den))) {
        memset(out, 0, sizeof(*out));
        return;
    }
    out->df = (qa + qb) * (qa + qb) / den;
    double t = out->estimate / out->se;
    out->p = t_two_sided(fabs(t), out->df);
    double half = analyze_t_quantile(1 - alpha / 2, out->df) * out->se;
    out->ci_lo = out->estimate - half;
    out->ci_hi = out->estimate + half;
    finish(out);
}

void analyze_ztest_proportions(const struct analyze_moments *a, const struct analyze_moments *b,
                               int relative, double alpha, struct analyze_estimate *out)
{
    memset(out, 0, sizeof(*out));
    if (difference(a, b, relative, &out->estimate, &out->se) != 0)
        return;
    double pooled = (a->mean * a->n + b->mean * b->n) / (a->n + b->n);
    double se0 = sqrt(pooled * (1 - pooled) * (1 / a->n + 1 / b->n));
    if (!(se0 > 0 && isfinite(se0))) {
        memset(out, 0, sizeof(*out));
        return;
    }
    double z = (b->mean - a->mean) / se0;
    out->p = erfc(fabs(z) / M_SQRT2);
    double half = analyze_normal_quantile(1 - alpha / 2) * out->se;
    out->ci_lo = out->estimate - half;
    out->ci_hi = out->estimate + half;
    finish(out);
}

double analyze_mixture_rho(double alpha, double nstar)
{
    double l = -2 * log(alpha);
    return sqrt((l + log(l + 1)) / nstar);
}

void analyze_sequential(double n_total, double nstar, double alpha, struct analyze_estimate *out)
{
    if (!out->ok || !(n_total > 0) || !(nstar > 0))
        return;
    double rho2 = analyze_mixture_rho(alpha, nstar);
    rho2 *= rho2;
    double nr = n_total * rho2 + 1;
    double s = out->se * sqrt(n_total);
    double half = s * sqrt(2 * nr / (n_total * n_total * rho2) * log(sqrt(nr) / alpha));
    out->seq_lo = out->estimate - half;
    out->seq_hi = out->estimate + half;
    double z2 = out->estimate * out->estimate * n_total / (out->se * out->se);
    /* 1/E = sqrt(nr) exp(-rho^2 z2 / (2 nr)), in logs so that a large z2 gives 0, not 1/inf */
    double log_inv_e = 0.5 * log(nr) - rho2 * z2 / (2 * nr);
    out->p_seq = log_inv_e >= 0 ? 1 : exp(log_inv_e);
    if (!(isfinite(out->seq_lo) && isfinite(out->seq_hi) && isfinite(out->p_seq)))
        memset(out, 0, sizeof(*out));
}

int analyze_srm(const double *observed, const double *weights, size_t k, double *chi2, double *p)
{
    double wsum = 0, osum = 0;
    size_t arms = 0;
    for (size_t i = 0; i < k; i++) {
        if (weights[i] > 0) {
            wsum += weights[i];
            osum += observed[i];
            arms++;
        }
    }
    if (arms < 2 || !(osum > 0))
        return -1;
    double x = 0;
    for (size_t i = 0; i < k; i++) {
        if (weights[i] > 0) {
            double e = weights[i] / wsum * osum;
            x += (observed[i] - e) * (observed[i] - e) / e;
        }
    }
    *chi2 = x;
    *p = analyze_chi2_sf(x, (double)(arms - 1));
    return 0;
}

struct ranked {
    double p;
    size_t at;
};

static int cmp_ranked(const void *x, const void *y)
{
    double a = ((const struct ranked *)x)->p, b = ((const struct ranked *)y)->p;
    return a < b ? -1 : a > b ? 1 : 0;
}

static struct ranked *rank(const double *p, size_t n)
{
    struct ranked *r = calloc(n ? n : 1, sizeof(*r));
    if (r == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        r[i] = (struct ranked){p[i], i};
    qsort(r, n, sizeof(*r), cmp_ranked);
    return r;
}

void analyze_holm(const double *p, size_t n, double *adj)
{
    struct ranked *r = rank(p, n);
    double running = 0;
    for (size_t j = 0; j < n; j++) {
        double v = fmin(1, (double)(n - j) * r[j].p);
        running = fmax(running, v);
        adj[r[j].at] = running;
    }
    free(r);
}

void analyze_bh(const double *p, size_t n, double *adj)
{
    struct ranked *r = rank(p, n);
    double running = 1;
    for (size_t j = n; j-- > 0;) {
        double v = fmin(1, (double)n * r[j].p / (double)(j + 1));
        running = fmin(running, v);
        adj[r[j].at] = running;
    }
    free(r);
}
