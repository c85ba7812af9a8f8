/*
 * Results that refresh by themselves (analyze.h, "results that refresh by themselves"): the
 * control plane's results service. It keeps, per experiment, when its results are due next and
 * whether an analysis of it is in progress, so that the schedule (one thread, one analysis at a
 * time) and the requests of the admin API ("Update results", on HTTP worker threads) never
 * analyse one experiment twice at once: a request for an experiment being analysed waits for that
 * analysis and then runs its own.
 *
 * When: an experiment's slot is a hash of its key modulo the interval, so the experiments of a
 * control plane are spread over the interval and keep their place across restarts; after each
 * computation an experiment is due at its next slot, and one without results yet at its first
 * slot; one whose results are older than the interval (the service was down) at once.
 * A failure (ClickHouse unreachable, say) is recorded with the stored results, which are then
 * answered as stale with the error, and retried after retry_ms, doubling, at most the interval.
 * Everything stored (results, history, the last attempt) is in the control database
 * (migrations/0004_results_refresh.sql); only the due times live in memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/clickhouse.h"
#include "abacus/mem.h"
#include "analyze.h"
#include "analyze_int.h"

#define RETRY_DEFAULT_MS 30000LL
#define WAIT_MAX_MS 10000LL /* the thread looks for newly started experiments this often */
#define HISTORY_LIMIT 1000  /* computations listed by analyze_refresh_history */

enum trigger { TRIGGER_SCHEDULE, TRIGGER_REQUEST, NTRIGGERS };
static const char *const TRIGGER_NAMES[NTRIGGERS] = {"schedule", "request"};

/* Upper bounds of the duration histogram, seconds. */
static const double BUCKETS[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300};
#define NBUCKETS (sizeof(BUCKETS) / sizeof(BUCKETS[0]))

/* An experiment the service knows: scheduled (running) or being analysed on request. */
struct entry {
    char *key;
    int64_t next_at; /* ms since epoch; INT64_MAX: not scheduled */
    int busy;        /* an analysis is in progress */
    int failures;    /* in a row */
    int scheduled;   /* running, so on the schedule */
};

struct analyze_refresh {
    struct analyze_refresh_config cfg;
    char *control_db;
    char *events_db;
    struct ab_ch_url ch_urls[ANALYZE_SHARDS_MAX];
    pthread_mutex_t lock; /* guards entries, stop */
    pthread_cond_t idle;  /* an analysis ended (entries' busy changed) */
    pthread_cond_t wake;  /* CLOCK_MONOTONIC: the thread's wait */
    struct entry *entries;
    size_t n;
    int stop;
    pthread_t thread;
    int started;
    struct ab_db *tick_db; /* the schedule's own connection (one ticker at a time) */
    _Atomic uint64_t runs[NTRIGGERS], failures[NTRIGGERS];
    _Atomic uint64_t hist[NBUCKETS + 1];
    _Atomic uint64_t dur_us_sum;
};

static uint64_t fnv64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* The first time after t at the slot of key (its place in the interval). */
static int64_t next_slot(const struct analyze_refresh *r, const char *key, int64_t t)
{
    int64_t every = r->cfg.every_ms;
    int64_t slot = (int64_t)(fnv64(key) % (uint64_t)every);
    int64_t base = t - ((t % every) + every) % every; /* floor to a multiple of every */
    int64_t s = base + slot;
    return s > t ? s : s + every;
}

static struct entry *find(struct analyze_refresh *r, const char *key)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->entries[i].key, key) == 0)
            return &r->entries[i];
    return NULL;
}

static struct entry *find_or_add(struct analyze_refresh *r, const char *key)
{
    struct entry *e = find(r, key);
    if (e != NULL)
        return e;
    r->entries = ab_mem_realloc(r->entries, (r->n + 1) * sizeof(*r->entries));
    e = &r->entries[r->n++];
    *e = (struct entry){ab_mem_strdup(key), INT64_MAX, 0, 0, 0};
    return e;
}

static void drop(struct analyze_refresh *r, size_t i)
{
    free(r->entries[i].key);
    r->entries[i] = r->entries[--r->n];
}

static enum ab_err open_control(const struct analyze_refresh *r, struct ab_db **db,
                                struct ab_errinfo *ei)
{
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL};
    return ab_db_open(r->control_db, &o, db, ei);
}

static void observe(struct analyze_refresh *r, enum trigger t, int ok, int64_t ns)
{
    atomic_fetch_add(&r->runs[t], 1);
    if (!ok)
        atomic_fetch_add(&r->failures[t], 1);
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && s > BUCKETS[b])
        b++;
    atomic_fetch_add(&r->hist[b], 1);
    atomic_fetch_add(&r->dur_us_sum, (uint64_t)(ns / 1000));
}

/*
 * One analysis of key as of the clock's now (the caller holds key's busy mark): computed from
 * the events store, stored with its history; a failure is recorded beside the stored results.
 */
static enum ab_err analyse(struct analyze_refresh *r, struct ab_db *control, const char *key,
                           enum trigger t, json_t **results, struct ab_errinfo *ei)
{
    int64_t now = ab_clock_now_ms(r->cfg.clock);
    int64_t t0 = ab_clock_mono_ns(&ab_clock_system);
    struct analyze_events ev;
    *results = NULL;
    enum ab_err rc = analyze_events_open(&r->cfg.store, &ev, ei);
    if (rc == AB_OK)
        rc = analyze_compute_store(control, &ev, key, now, r->cfg.settings, now - r->cfg.history_ms,
                                   results, ei);
    analyze_events_close(&ev);
    int64_t ns = ab_clock_mono_ns(&ab_clock_system) - t0;
    observe(r, t, rc == AB_OK, ns);
    if (rc == AB_OK) {
        AB_LOG_I(r->cfg.log, "results_refreshed", "experiment=%s trigger=%s seconds=%.3f", key,
                 TRIGGER_NAMES[t], (double)ns / 1e9);
        return AB_OK;
    }
    AB_LOG_W(r->cfg.log, "results_refresh_failed",
             "experiment=%s trigger=%s error=%s message=\"%s\"", key, TRIGGER_NAMES[t],
             ab_err_code(rc), ei->message);
    if (rc != AB_ERR_NOT_FOUND) {
        struct ab_errinfo ignored;
        (void)analyze_sql_store_failure(control, key, now, ab_err_code(rc), ei->message, &ignored);
    }
    return rc;
}

/* After an analysis of e: its next due time on the schedule (lock held). */
static void reschedule(struct analyze_refresh *r, struct entry *e, int ok, int64_t now)
{
    if (!e->scheduled || r->cfg.every_ms <= 0) {
        e->next_at = INT64_MAX;
        return;
    }
    if (ok) {
        e->failures = 0;
        e->next_at = next_slot(r, e->key, now);
        return;
    }
    e->failures++;
    int64_t wait = r->cfg.retry_ms;
    for (int i = 1; i < e->failures && wait < r->cfg.every_ms; i++)
        wait *= 2;
    if (wait > r->cfg.every_ms)
        wait = r->cfg.every_ms;
    e->next_at = now + wait;
}

enum ab_err analyze_refresh_new(const struct analyze_refresh_config *cfg,
                                struct analyze_refresh **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->control_db == NULL || cfg->clock == NULL ||
        (cfg->store.clickhouse == NULL && cfg->store.events_db == NULL))
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "refresh: control_db, store and clock needed");
    if (cfg->every_ms < 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "analyze-every", "must not be negative");
    struct analyze_refresh *r = ab_mem_calloc(1, sizeof(*r));
    r->cfg = *cfg;
    r->control_db = ab_mem_strdup(cfg->control_db);
    r->cfg.control_db = r->control_db;
    if (cfg->store.clickhouse != NULL) {
        size_t n = cfg->store.nclickhouse > 0 ? cfg->store.nclickhouse : 1;
        if (n > ANALYZE_SHARDS_MAX)
            n = ANALYZE_SHARDS_MAX;
        memcpy(r->ch_urls, cfg->store.clickhouse, n * sizeof(r->ch_urls[0]));
        r->cfg.store.clickhouse = r->ch_urls;
        r->cfg.store.nclickhouse = n;
    } else {
        r->events_db = ab_mem_strdup(cfg->store.events_db);
        r->cfg.store.events_db = r->events_db;
    }
    if (r->cfg.history_ms <= 0)
        r->cfg.history_ms = ANALYZE_HISTORY_DEFAULT_DAYS * ANALYZE_DAY_MS;
    if (r->cfg.retry_ms <= 0)
        r->cfg.retry_ms = RETRY_DEFAULT_MS;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->idle, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &ca);
    pthread_condattr_destroy(&ca);
    *out = r;
    return AB_OK;
}

/* Brings the schedule in line with the running experiments (lock held). */
static void sync_running(struct analyze_refresh *r, struct ab_db *db, char **keys, size_t n,
                         int64_t now)
{
    for (size_t i = 0; i < r->n; i++)
        r->entries[i].scheduled = 0;
    for (size_t k = 0; k < n; k++) {
        struct entry *e = find(r, keys[k]);
        if (e == NULL || e->next_at == INT64_MAX) {
            struct analyze_refresh_state st = {0};
            struct ab_errinfo ignored;
            int64_t computed = 0;
            if (analyze_sql_refresh_state(db, keys[k], &st, &ignored) == AB_OK)
                computed = st.computed_at;
            e = find_or_add(r, keys[k]);
            e->next_at = next_slot(r, keys[k], computed > 0 ? computed : now);
        }
        e->scheduled = 1;
    }
    for (size_t i = r->n; i-- > 0;)
        if (!r->entries[i].scheduled && !r->entries[i].busy)
            drop(r, i);
}

enum ab_err analyze_refresh_tick(struct analyze_refresh *r, int *ran, int64_t *next_ms,
                                 struct ab_errinfo *ei)
{
    if (ran != NULL)
        *ran = 0;
    *next_ms = INT64_MAX;
    if (r->cfg.every_ms <= 0)
        return AB_OK;
    enum ab_err rc = r->tick_db != NULL ? AB_OK : open_control(r, &r->tick_db, ei);
    char **keys = NULL;
    size_t n = 0;
    if (rc == AB_OK)
        rc = analyze_sql_running(r->tick_db, &keys, &n, ei);
    if (rc != AB_OK)
        return rc;
    int64_t now = ab_clock_now_ms(r->cfg.clock);
    pthread_mutex_lock(&r->lock);
    sync_running(r, r->tick_db, keys, n, now);
    struct entry *due = NULL;
    for (size_t i = 0; i < r->n; i++) {
        struct entry *e = &r->entries[i];
        if (e->scheduled && !e->busy && e->next_at <= now &&
            (due == NULL || e->next_at < due->next_at))
            due = e;
    }
    char *key = NULL;
    if (due != NULL) {
        due->busy = 1;
        key = ab_mem_strdup(due->key);
    }
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    if (key != NULL) {
        json_t *results = NULL;
        struct ab_errinfo aei;
        enum ab_err arc = analyse(r, r->tick_db, key, TRIGGER_SCHEDULE, &results, &aei);
        json_decref(results);
        pthread_mutex_lock(&r->lock);
        struct entry *e = find(r, key);
        e->busy = 0;
        reschedule(r, e, arc == AB_OK, ab_clock_now_ms(r->cfg.clock));
        pthread_cond_broadcast(&r->idle);
        pthread_mutex_unlock(&r->lock);
        free(key);
        if (ran != NULL)
            *ran = 1;
    }
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        if (r->entries[i].scheduled && !r->entries[i].busy && r->entries[i].next_at < *next_ms)
            *next_ms = r->entries[i].next_at;
    pthread_mutex_unlock(&r->lock);
    return AB_OK;
}

static void *refresh_main(void *arg)
{
    struct analyze_refresh *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        pthread_mutex_unlock(&r->lock);
        int ran = 0;
        int64_t next = INT64_MAX;
        struct ab_errinfo ei;
        if (analyze_refresh_tick(r, &ran, &next, &ei) != AB_OK)
            AB_LOG_E(r->cfg.log, "results_schedule_failed", "message=\"%s\"", ei.message);
        int64_t wait = ran ? 0 : next - ab_clock_now_ms(r->cfg.clock);
        if (wait > WAIT_MAX_MS)
            wait = WAIT_MAX_MS;
        if (wait < 0)
            wait = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (wait % 1000) * 1000000;
        ts.tv_sec += (time_t)(wait / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_mutex_lock(&r->lock);
        while (!r->stop && wait > 0 &&
               pthread_cond_timedwait(&r->wake, &r->lock, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

enum ab_err analyze_refresh_start(struct analyze_refresh *r, struct ab_errinfo *ei)
{
    if (r->cfg.every_ms <= 0)
        return AB_OK;
    int err = pthread_create(&r->thread, NULL, refresh_main, r);
    if (err != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the results refresh: %s",
                       strerror(err));
    r->started = 1;
    return AB_OK;
}

void analyze_refresh_stop(struct analyze_refresh *r)
{
    if (r == NULL || !r->started)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = 1;
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    r->started = 0;
}

void analyze_refresh_free(struct analyze_refresh *r)
{
    if (r == NULL)
        return;
    analyze_refresh_stop(r);
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i].key);
    free(r->entries);
    ab_db_close(r->tick_db);
    pthread_cond_destroy(&r->idle);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r->control_db);
    free(r->events_db);
    free(r);
}

enum ab_err analyze_refresh_now(struct analyze_refresh *r, const char *key, json_t **out,
                                struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_db *db = NULL;
    enum ab_err rc = open_control(r, &db, ei);
    if (rc != AB_OK)
        return rc;
    pthread_mutex_lock(&r->lock);
    struct entry *e = find_or_add(r, key);
    while (e->busy) {
        pthread_cond_wait(&r->idle, &r->lock);
        e = find_or_add(r, key); /* the array may have moved */
    }
    e->busy = 1;
    pthread_mutex_unlock(&r->lock);
    json_t *results = NULL;
    rc = analyse(r, db, key, TRIGGER_REQUEST, &results, ei);
    json_decref(results);
    pthread_mutex_lock(&r->lock);
    e = find(r, key);
    e->busy = 0;
    if (e->scheduled)
        reschedule(r, e, rc == AB_OK, ab_clock_now_ms(r->cfg.clock));
    else if (e->next_at == INT64_MAX)
        drop(r, (size_t)(e - r->entries));
    pthread_cond_broadcast(&r->idle);
    pthread_mutex_unlock(&r->lock);
    ab_db_close(db);
    return rc == AB_OK ? analyze_refresh_get(r, key, 0, out, ei) : rc;
}

/* The "refresh" object of key's answer from its stored state and the schedule. */
static json_t *refresh_json(struct analyze_refresh *r, const char *key,
                            const struct analyze_refresh_state *st)
{
    int64_t next = INT64_MAX;
    int busy = 0;
    pthread_mutex_lock(&r->lock);
    const struct entry *e = find(r, key);
    if (e != NULL) {
        busy = e->busy;
        if (e->scheduled)
            next = e->next_at;
    }
    pthread_mutex_unlock(&r->lock);
    int failed = st->error_code[0] != '\0';
    json_t *o = json_object();
    json_object_set_new(o, "computed_at",
                        st->computed_at > 0 ? analyze_rfc3339(st->computed_at) : json_null());
    json_object_set_new(o, "attempted_at",
                        st->attempted_at > 0 ? analyze_rfc3339(st->attempted_at) : json_null());
    json_object_set_new(o, "next_at", next != INT64_MAX ? analyze_rfc3339(next) : json_null());
    json_object_set_new(o, "every_seconds", json_integer(r->cfg.every_ms / 1000));
    json_object_set_new(o, "running", json_boolean(busy));
    json_object_set_new(o, "stale", json_boolean(failed && st->attempted_at >= st->computed_at));
    json_object_set_new(
        o, "error",
        failed ? json_pack("{s:s, s:s}", "code", st->error_code, "message", st->error_message)
               : json_null());
    return o;
}

enum ab_err analyze_refresh_get(struct analyze_refresh *r, const char *key, int64_t as_of_ms,
                                json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_db *db = NULL;
    struct analyze_refresh_state st = {0};
    json_t *results = NULL;
    enum ab_err rc = open_control(r, &db, ei);
    if (rc == AB_OK)
        rc = analyze_sql_refresh_state(db, key, &st, ei);
    if (rc == AB_OK)
        rc = analyze_stored(db, key, as_of_ms, &results, ei);
    ab_db_close(db);
    if (rc == AB_ERR_NOT_FOUND && as_of_ms == 0 && st.error_code[0] != '\0')
        return ab_fail(ei, AB_ERR_NOT_FOUND, "experiment",
                       "no results for %s yet: the last analysis failed (%s: %s)", key,
                       st.error_code, st.error_message);
    if (rc != AB_OK)
        return rc;
    json_t *refresh = refresh_json(r, key, &st);
    if (as_of_ms > 0) /* an earlier computation: not the current state's */
        json_object_set_new(refresh, "stale", json_false());
    json_object_set_new(results, "refresh", refresh);
    *out = results;
    return AB_OK;
}

enum ab_err analyze_refresh_history(struct analyze_refresh *r, const char *key, json_t **out,
                                    struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_db *db = NULL;
    struct analyze_refresh_state st = {0};
    json_t *list = NULL;
    enum ab_err rc = open_control(r, &db, ei);
    if (rc == AB_OK)
        rc = analyze_sql_refresh_state(db, key, &st, ei);
    if (rc == AB_OK)
        rc = analyze_sql_history(db, key, HISTORY_LIMIT, &list, ei);
    ab_db_close(db);
    if (rc == AB_OK)
        *out = json_pack("{s:s, s:o, s:I}", "experiment", key, "history", list, "kept_days",
                         (json_int_t)(r->cfg.history_ms / ANALYZE_DAY_MS));
    return rc;
}

void analyze_refresh_metrics(void *data, FILE *out)
{
    struct analyze_refresh *r = data;
    fputs("# HELP abacus_analyze_runs_total Analyses of an experiment's results, by trigger.\n"
          "# TYPE abacus_analyze_runs_total counter\n",
          out);
    for (int t = 0; t < NTRIGGERS; t++)
        fprintf(out, "abacus_analyze_runs_total{trigger=\"%s\"} %llu\n", TRIGGER_NAMES[t],
                (unsigned long long)atomic_load(&r->runs[t]));
    fputs("# HELP abacus_analyze_failures_total Analyses that failed (results kept, marked "
          "stale), by trigger.\n# TYPE abacus_analyze_failures_total counter\n",
          out);
    for (int t = 0; t < NTRIGGERS; t++)
        fprintf(out, "abacus_analyze_failures_total{trigger=\"%s\"} %llu\n", TRIGGER_NAMES[t],
                (unsigned long long)atomic_load(&r->failures[t]));
    fputs("# HELP abacus_analyze_duration_seconds Time an analysis took.\n"
          "# TYPE abacus_analyze_duration_seconds histogram\n",
          out);
    uint64_t cum = 0;
    for (size_t b = 0; b <= NBUCKETS; b++) {
        cum += atomic_load(&r->hist[b]);
        if (b < NBUCKETS)
            fprintf(out, "abacus_analyze_duration_seconds_bucket{le=\"%g\"} %llu\n", BUCKETS[b],
                    (unsigned long long)cum);
        else
            fprintf(out, "abacus_analyze_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    fprintf(
        out,
        "abacus_analyze_duration_seconds_sum %.6f\nabacus_analyze_duration_seconds_count %llu\n",
        (double)atomic_load(&r->dur_us_sum) / 1e6, (unsigned long long)cum);
    struct ab_db *db = NULL;
    struct ab_errinfo ei;
    int64_t oldest = 0;
    if (open_control(r, &db, &ei) == AB_OK &&
        analyze_sql_oldest_result(db, &oldest, &ei) == AB_OK && oldest > 0) {
        double age = (double)(ab_clock_now_ms(r->cfg.clock) - oldest) / 1000;
        fprintf(out,
                "# HELP abacus_analyze_oldest_result_age_seconds Age of the oldest current "
                "result of a running experiment (since its start when it has none).\n"
                "# TYPE abacus_analyze_oldest_result_age_seconds gauge\n"
                "abacus_analyze_oldest_result_age_seconds %.3f\n",
                age > 0 ? age : 0);
    }
    ab_db_close(db);
}
