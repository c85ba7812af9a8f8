/*
 * The analysis component's entry points, for `abacus analyze`, the admin API's results and
 * "update results" endpoints, and the nightly report: compute an experiment's results from the
 * events stored so far (docs/design.md, "Analysis"), store them in the control database's results
 * table, and read them back. Recomputing is idempotent: it replaces the stored results of the
 * experiment's current phase.
 */
#ifndef ABACUS_ANALYZE_H
#define ABACUS_ANALYZE_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/err.h"
#include "abacus/log.h"

struct analyze_settings {
    double alpha;           /* two-sided; 0 = 0.05 */
    const char *correction; /* "holm" (default when NULL), "bh" or "none" */
};

struct ab_ch;
struct ab_ch_url;

#define ANALYZE_SHARDS_MAX 16
/* max_memory_usage of each ClickHouse query of an analysis (docs/scaling.md), bytes */
#define ANALYZE_CH_MAX_MEMORY ((int64_t)3 << 29) /* 1.5 GiB */

/*
 * Where the events are: a collector's SQLite events database, or ClickHouse (nshards > 0): one
 * server's events table (migrations/clickhouse/; also a Distributed table named events), or
 * with nshards > 1 the events_local table of every shard of a cluster sharded by unit
 * (migrations/clickhouse/cluster/), each aggregated where it is and the sums added here.
 */
struct analyze_events {
    struct ab_db *sqlite;                     /* with nshards 0 */
    struct ab_ch *shards[ANALYZE_SHARDS_MAX]; /* one server, or every shard of a cluster */
    size_t nshards;
};

/*
 * The events store an analysis reads, named once for every reader (the results API, the
 * scheduled refresh, the nightly report, `abacus analyze`): ClickHouse when clickhouse is not
 * NULL, else the SQLite file events_db.
 */
struct analyze_store {
    const char *events_db;
    const struct ab_ch_url *clickhouse; /* nclickhouse URLs: one server, or a cluster's shards */
    size_t nclickhouse;
    long timeout_ms; /* per ClickHouse query; 0 = 600000 */
};

/*
 * Opens the store's connection for one analysis into *ev (close with analyze_events_close).
 * AB_ERR_UNAVAILABLE when events_db does not exist (nothing was collected yet).
 */
enum ab_err analyze_events_open(const struct analyze_store *store, struct analyze_events *ev,
                                struct ab_errinfo *ei);
void analyze_events_close(struct analyze_events *ev); /* accepts a zeroed or closed one */

/* How long computations stay in an experiment's results history by default. */
#define ANALYZE_HISTORY_DEFAULT_DAYS 90

/*
 * Computes experiment key's results from events (the events database) as of now_ms (events at
 * or after it are left out), stores them in control's results table and returns them in
 * *results (a new reference, the caller's). Errors: AB_ERR_NOT_FOUND (no such experiment),
 * AB_ERR_INVALID_FIELD (it never started; a bad setting), AB_ERR_STORAGE.
 */
enum ab_err analyze_experiment(struct ab_db *control, struct ab_db *events, const char *key,
                               int64_t now_ms, const struct analyze_settings *settings,
                               json_t **results, struct ab_errinfo *ei);

/*
 * Like analyze_experiment, but leaves the stored results alone: the results as of now_ms (also
 * their computed_at), for the nightly report.
 */
enum ab_err analyze_experiment_as_of(struct ab_db *control, const struct analyze_events *events,
                                     const char *key, int64_t now_ms,
                                     const struct analyze_settings *settings, json_t **results,
                                     struct ab_errinfo *ei);

/*
 * analyze_experiment with the events in either store: the same aggregation (ClickHouse SQL in
 * analyze/clickhouse.c), the same statistics. ClickHouse adds AB_ERR_UNAVAILABLE (unreachable).
 */
enum ab_err analyze_experiment_in(struct ab_db *control, const struct analyze_events *events,
                                  const char *key, int64_t now_ms,
                                  const struct analyze_settings *settings, json_t **results,
                                  struct ab_errinfo *ei);

/* The keys of the running experiments, sorted (*keys and each key the caller's, free()). */
enum ab_err analyze_running(struct ab_db *control, char ***keys, size_t *n,
                            struct ab_errinfo *ei);

/*
 * The stored results of experiment key's current phase (as_of_ms 0), or the newest kept
 * computation at or before as_of_ms (a new reference); AB_ERR_NOT_FOUND (field experiment, or
 * as_of) when there is none.
 */
enum ab_err analyze_stored(struct ab_db *control, const char *key, int64_t as_of_ms,
                           json_t **results, struct ab_errinfo *ei);

/* --- results that refresh by themselves (refresh.c) ------------------------------------------ */

struct analyze_refresh_config {
    const char *control_db;      /* DATA_DIR/abacus.db */
    struct analyze_store store;  /* the events */
    int64_t every_ms;            /* recompute every running experiment this often; 0: never */
    int64_t history_ms;          /* computations kept in the history; 0 = the default 90 days */
    int64_t retry_ms;            /* first wait after a failure, doubling up to every_ms; 0 = 30 s */
    const struct analyze_settings *settings; /* NULL: the defaults */
    const struct ab_clock *clock;
    const struct ab_log *log;
};

struct analyze_refresh;

/*
 * The results service of a control plane: computes and stores results on request and on a
 * schedule, at most one analysis of an experiment at a time, and answers the stored results with
 * their refresh state. The schedule: every running experiment has a slot in the interval (a hash
 * of its key), so the computations are spread over the interval; it is due at the first slot after
 * its last computation (or after now, without results). A failure keeps the stored results,
 * records the error (they are answered as stale) and is retried after retry_ms, doubling, at most
 * every_ms.
 */
enum ab_err analyze_refresh_new(const struct analyze_refresh_config *cfg,
                                struct analyze_refresh **out, struct ab_errinfo *ei);

/* Starts the scheduler thread (nothing when every_ms is 0). */
enum ab_err analyze_refresh_start(struct analyze_refresh *r, struct ab_errinfo *ei);

/* Stops the thread, waiting for an analysis in progress. Accepts NULL. */
void analyze_refresh_stop(struct analyze_refresh *r);
void analyze_refresh_free(struct analyze_refresh *r); /* accepts NULL */

/*
 * One step of the schedule at the clock's now, without the thread (the thread runs this): runs
 * the analysis of the most overdue running experiment, if one is due and not being analysed.
 * *ran (may be NULL) gets 1 when it ran one; *next_ms gets when the next one is due (ms since
 * the epoch; INT64_MAX when nothing is scheduled).
 */
enum ab_err analyze_refresh_tick(struct analyze_refresh *r, int *ran, int64_t *next_ms,
                                 struct ab_errinfo *ei);

/*
 * Computes key's results now (waiting for an analysis of key already in progress), stores them
 * and answers them as analyze_refresh_get does. A failure is recorded as the schedule's are.
 */
enum ab_err analyze_refresh_now(struct analyze_refresh *r, const char *key, json_t **out,
                                struct ab_errinfo *ei);

/*
 * The stored results of key's current phase (as_of_ms 0), or the newest kept computation at or
 * before as_of_ms, with a "refresh" object: computed_at, attempted_at, next_at (null when not
 * scheduled), every_seconds, running (an analysis in progress), stale (the last attempt failed
 * after these results were computed) and error ({code, message} or null). AB_ERR_NOT_FOUND when
 * there are none (field "experiment"; the message carries the last error, if any).
 */
enum ab_err analyze_refresh_get(struct analyze_refresh *r, const char *key, int64_t as_of_ms,
                                json_t **out, struct ab_errinfo *ei);

/* The kept computations of key, newest first: {"experiment", "history": [...]} */
enum ab_err analyze_refresh_history(struct analyze_refresh *r, const char *key, json_t **out,
                                    struct ab_errinfo *ei);

/*
 * /metrics text of the service (ab_http_metrics_cb): analyses run and failed by trigger, their
 * duration histogram, and the age of the oldest current result of a running experiment.
 */
void analyze_refresh_metrics(void *r, FILE *out);

/* --- the nightly report (report.c) --------------------------------------------------------- */

#define ANALYZE_REPORT_MULTI_SHARE 0.01   /* flagged above 1% of exposed units */
#define ANALYZE_REPORT_STALE_MS 3600000LL /* configuration unpublished for more than 1 hour */

/* Rejected events received in [from_ms, to_ms) (the collector's count, wired in by main). */
typedef enum ab_err (*analyze_rejected_cb)(void *data, int64_t from_ms, int64_t to_ms,
                                           int64_t *count, struct ab_errinfo *ei);
/*
 * The time of the oldest configuration change made before as_of_ms that no snapshot published
 * before as_of_ms contains, 0 when everything was published (the control plane's answer).
 */
typedef enum ab_err (*analyze_unpublished_cb)(void *data, int64_t as_of_ms, int64_t *since_ms,
                                              struct ab_errinfo *ei);

struct analyze_report_sources {
    struct ab_db *control;        /* read only here */
    struct analyze_events events; /* the events store, read only; required (an empty SQLite
                                     database when nothing was collected) */
    analyze_rejected_cb rejected; /* NULL: rejected events are not counted */
    void *rejected_data;
    analyze_unpublished_cb unpublished; /* NULL: snapshot staleness is not checked */
    void *unpublished_data;
};

/*
 * Writes the report of the UTC day starting at day_ms (a multiple of 86400000) into out_dir
 * (created if missing): report.json, report.csv and report.html, each written to a temporary
 * name, fsynced and renamed. Every experiment whose current phase overlaps the day is analysed
 * afresh as of the end of the day (stored results are not touched). The content depends only on
 * the data and the day: rerunning gives the same bytes. *summary (may be NULL) gets the report's
 * summary object (a new reference) for a notification. Errors: AB_ERR_INVALID_FIELD (day_ms),
 * AB_ERR_STORAGE, AB_ERR_IO.
 */
enum ab_err analyze_report_write(const struct analyze_report_sources *src, int64_t day_ms,
                                 const char *out_dir, json_t **summary, struct ab_errinfo *ei);

/* "YYYY-MM-DD" -> ms of that day's 00:00 UTC in *day_ms; AB_ERR_INVALID_FIELD when malformed. */
enum ab_err analyze_report_parse_date(const char *text, int64_t *day_ms, struct ab_errinfo *ei);

/* The date of day_ms as "YYYY-MM-DD" into out[11]. */
void analyze_report_format_date(int64_t day_ms, char out[11]);

/* --- the report's scheduler (report_schedule.c) ---------------------------------------------- */

/* Runs the report of day_ms into out_dir (main wires opening the databases and the webhook). */
typedef enum ab_err (*analyze_report_run_cb)(void *data, int64_t day_ms, const char *out_dir,
                                             struct ab_errinfo *ei);

struct analyze_schedule_config {
    const char *reports_dir; /* DATA_DIR/reports: one directory per day, YYYY-MM-DD */
    int at_minute;           /* minutes after 00:00 UTC the previous day's report is due */
    const struct ab_clock *clock;
    const struct ab_log *log;
    analyze_report_run_cb run;
    void *run_data;
};

struct analyze_scheduler;

enum ab_err analyze_scheduler_new(const struct analyze_schedule_config *cfg,
                                  struct analyze_scheduler **out, struct ab_errinfo *ei);

/*
 * The day whose report is due at now_ms (ms of its 00:00 UTC): the latest day D with
 * D + 1 day + at_minute <= now_ms. Pure.
 */
int64_t analyze_schedule_due_day(int at_minute, int64_t now_ms);

/*
 * One step of the scheduler at the clock's now: when the due day has no report yet
 * (reports_dir/DATE/report.json missing) and no earlier failure asks to wait, runs it. A missed
 * run (the process was down at the time) is therefore caught up at the first step after start,
 * once; days before the due day are not (abacus report --date writes them). *ran (may be NULL)
 * gets 1 when a report was run. *next_ms gets when a step is due next (wall clock).
 */
enum ab_err analyze_scheduler_tick(struct analyze_scheduler *s, int *ran, int64_t *next_ms,
                                   struct ab_errinfo *ei);

/* Starts a thread that steps the scheduler (at start, then when due; at least once a minute). */
enum ab_err analyze_scheduler_start(struct analyze_scheduler *s, struct ab_errinfo *ei);

/* Stops the thread (waits for a report being written). Accepts NULL. */
void analyze_scheduler_stop(struct analyze_scheduler *s);
void analyze_scheduler_free(struct analyze_scheduler *s); /* accepts NULL */

/* --- the report's webhook (report_webhook.c) ------------------------------------------------- */

struct analyze_webhook_config {
    const char *url; /* http:// or https:// */
    int attempts;    /* deliveries tried per report; 0 = 6 */
    int backoff_ms;  /* wait before the 2nd attempt, doubling, at most 5 min; 0 = 2000 */
    int timeout_ms;  /* per attempt; 0 = 10000 */
    const struct ab_log *log;
};

struct analyze_webhook;

/* Creates the notifier and starts its thread (libcurl must be initialised by main). */
enum ab_err analyze_webhook_new(const struct analyze_webhook_config *cfg,
                                struct analyze_webhook **out, struct ab_errinfo *ei);

/*
 * Queues a notification of summary (the report's summary object; a reference is taken) and
 * returns at once: the thread POSTs {"text": ..., "report": summary} as application/json and
 * retries a failed delivery (no answer, or a status other than 2xx) with backoff, up to
 * attempts times.
 */
void analyze_webhook_notify(struct analyze_webhook *w, json_t *summary);

/* Waits until every queued notification is delivered or given up (for `abacus report`). */
void analyze_webhook_drain(struct analyze_webhook *w);

/* Counts since creation: notifications delivered and given up. */
void analyze_webhook_counts(struct analyze_webhook *w, int64_t *delivered, int64_t *failed);

/* Stops the thread at once (pending retries are abandoned) and frees. Accepts NULL. */
void analyze_webhook_free(struct analyze_webhook *w);

#endif
