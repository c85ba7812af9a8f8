/*
 * Clock implementations: the system clock and a fixed, advanceable clock for tests.
 */
#include <stdio.h>
#include <time.h>
#include "abacus/clock.h"

static int64_t system_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t system_mono_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const struct ab_clock ab_clock_system = {system_now_ms, system_mono_ns, NULL};

static int64_t fixed_now_ms(void *ctx)
{
    return ((struct ab_clock_fixed *)ctx)->now_ms;
}

static int64_t fixed_mono_ns(void *ctx)
{
    return ((struct ab_clock_fixed *)ctx)->mono_ns;
}

void ab_clock_fixed_init(struct ab_clock_fixed *f, int64_t now_ms)
{
    f->clock.now_ms_cb = fixed_now_ms;
    f->clock.mono_ns_cb = fixed_mono_ns;
    f->clock.ctx = f;
    f->now_ms = now_ms;
    f->mono_ns = 0;
}

void ab_clock_fixed_advance_ms(struct ab_clock_fixed *f, int64_t ms)
{
    f->now_ms += ms;
    f->mono_ns += ms * 1000000;
}

int ab_clock_format_rfc3339(int64_t ms, char *out, int outlen)
{
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int milli = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    return snprintf(out, (size_t)outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
}
