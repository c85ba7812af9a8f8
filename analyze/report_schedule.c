/*
 * The nightly report's scheduler (analyze.h): the previous UTC day's report is due at
 * --report-at every day. A step asks the injected clock for the time, finds the due day and runs
 * it unless DATA_DIR/reports/DATE/report.json exists (the report writes it last), so a run missed
 * while the process was down happens at the first step after start, and only once. A failed run
 * is retried after 1 minute, doubling to 1 hour. The thread steps at start, when the next run is
 * due and at least once a minute (the wall clock may jump); it runs the report itself, so the
 * HTTP event loops never wait for it. Wired by `abacus web` and `abacus up`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "abacus/mem.h"
#include "analyze.h"
#include "analyze_int.h"

#define RETRY_FIRST_MS 60000LL
#define RETRY_MAX_MS 3600000LL
#define STEP_MAX_MS 60000LL

struct analyze_scheduler {
    struct analyze_schedule_config cfg;
    char *reports_dir;
    int64_t failed_day;  /* the day whose last run failed, or -1 */
    int64_t retry_at_ms; /* wall clock: no new try of failed_day before */
    int64_t backoff_ms;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    int stop;
    pthread_t thread;
    int started;
};

int64_t analyze_schedule_due_day(int at_minute, int64_t now_ms)
{
    int64_t t = now_ms - (int64_t)at_minute * 60000 - ANALYZE_DAY_MS;
    int64_t q = t / ANALYZE_DAY_MS;
    if (t % ANALYZE_DAY_MS < 0)
        q--; /* floor */
    return q * ANALYZE_DAY_MS;
}

enum ab_err analyze_scheduler_new(const struct analyze_schedule_config *cfg,
                                  struct analyze_scheduler **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->at_minute < 0 || cfg->at_minute >= 24 * 60)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "report-at", "must be a time of day, HH:MM");
    if (cfg->reports_dir == NULL || cfg->run == NULL || cfg->clock == NULL)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "scheduler: reports_dir, run and clock needed");
    struct analyze_scheduler *s = ab_mem_calloc(1, sizeof(*s));
    s->cfg = *cfg;
    s->reports_dir = ab_mem_strdup(cfg->reports_dir);
    s->cfg.reports_dir = s->reports_dir;
    s->failed_day = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = s;
    return AB_OK;
}

enum ab_err analyze_scheduler_tick(struct analyze_scheduler *s, int *ran, int64_t *next_ms,
                                   struct ab_errinfo *ei)
{
    if (ran != NULL)
        *ran = 0;
    int64_t now = ab_clock_now_ms(s->cfg.clock);
    int64_t day = analyze_schedule_due_day(s->cfg.at_minute, now);
    int64_t next_due = day + 2 * ANALYZE_DAY_MS + (int64_t)s->cfg.at_minute * 60000;
    *next_ms = next_due;
    char date[11], dir[4200], done[4300];
    analyze_report_format_date(day, date);
    snprintf(dir, sizeof(dir), "%s/%s", s->reports_dir, date);
    snprintf(done, sizeof(done), "%s/report.json", dir);
    if (access(done, F_OK) == 0)
        return AB_OK;
    if (s->failed_day == day && now < s->retry_at_ms) {
        *next_ms = s->retry_at_ms;
        return AB_OK;
    }
    AB_LOG_I(s->cfg.log, "report_start", "date=%s dir=%s", date, dir);
    enum ab_err rc = s->cfg.run(s->cfg.run_data, day, dir, ei);
    if (rc == AB_OK) {
        s->failed_day = -1;
        if (ran != NULL)
            *ran = 1;
        AB_LOG_I(s->cfg.log, "report_written", "date=%s dir=%s", date, dir);
        return AB_OK;
    }
    s->backoff_ms = s->failed_day == day ? s->backoff_ms * 2 : RETRY_FIRST_MS;
    if (s->backoff_ms > RETRY_MAX_MS)
        s->backoff_ms = RETRY_MAX_MS;
    s->failed_day = day;
    s->retry_at_ms = now + s->backoff_ms;
    *next_ms = s->retry_at_ms;
    AB_LOG_E(s->cfg.log, "report_failed", "date=%s retry_in_s=%lld error=%s", date,
             (long long)(s->backoff_ms / 1000), ei->message);
    return rc;
}

static void *scheduler_main(void *arg)
{
    struct analyze_scheduler *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        int64_t next = 0;
        struct ab_errinfo ei;
        (void)analyze_scheduler_tick(s, NULL, &next, &ei); /* failures are logged and retried */
        int64_t wait = next - ab_clock_now_ms(s->cfg.clock);
        if (wait > STEP_MAX_MS)
            wait = STEP_MAX_MS;
        if (wait < 1000)
            wait = 1000;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (wait % 1000) * 1000000;
        ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&s->lock);
        while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

enum ab_err analyze_scheduler_start(struct analyze_scheduler *s, struct ab_errinfo *ei)
{
    int err = pthread_create(&s->thread, NULL, scheduler_main, s);
    if (err != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the report scheduler: %s",
                       strerror(err));
    s->started = 1;
    return AB_OK;
}

void analyze_scheduler_stop(struct analyze_scheduler *s)
{
    if (s == NULL || !s->started)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    s->started = 0;
}

void analyze_scheduler_free(struct analyze_scheduler *s)
{
    if (s == NULL)
        return;
    analyze_scheduler_stop(s);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->reports_dir);
    free(s);
}
