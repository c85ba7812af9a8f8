/*
 * An injectable clock. Logic that depends on time takes a const struct ab_clock * and never calls
 * time(), gettimeofday() or clock_gettime() itself, so tests can pin or advance time. ab_clock_system
 * reads the real clocks; struct ab_clock_fixed is a settable clock for tests.
 */
#ifndef ABACUS_CLOCK_H
#define ABACUS_CLOCK_H

#include <stdint.h>

struct ab_clock {
    int64_t (*now_ms_cb)(void *ctx);  /* wall clock, ms since the Unix epoch (UTC) */
    int64_t (*mono_ns_cb)(void *ctx); /* monotonic, ns since an arbitrary start */
    void *ctx;
};

/* The real clocks (CLOCK_REALTIME, CLOCK_MONOTONIC). */
extern const struct ab_clock ab_clock_system;

static inline int64_t ab_clock_now_ms(const struct ab_clock *c)
{
    return c->now_ms_cb(c->ctx);
}

static inline int64_t ab_clock_mono_ns(const struct ab_clock *c)
{
    return c->mono_ns_cb(c->ctx);
}

/* A clock that stands still until advanced; both readings move together. */
struct ab_clock_fixed {
    struct ab_clock clock; /* pass &fixed.clock wherever a clock is wanted */
    int64_t now_ms;        /* current wall time, ms since epoch */
    int64_t mono_ns;       /* current monotonic time, ns */
};

void ab_clock_fixed_init(struct ab_clock_fixed *f, int64_t now_ms);
void ab_clock_fixed_advance_ms(struct ab_clock_fixed *f, int64_t ms);

/*
 * Formats ms since epoch as RFC 3339 UTC with milliseconds ("2026-11-24T12:46:02.123Z") into out
 * (at least 25 bytes). Returns the length written.
 */
int ab_clock_format_rfc3339(int64_t ms, char *out, int outlen);

#endif
