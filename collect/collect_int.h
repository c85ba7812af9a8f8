/*
 * Private types of the collector, shared by its .c files: the parsed batch (parse.c, the pure
 * core: bytes in, events and rejections out, no SQLite, no sockets), the store with its writer
 * thread (store.c: dedup and group commit into SQLite) and the HTTP glue (node.c).
 */
#ifndef ABACUS_COLLECT_INT_H
#define ABACUS_COLLECT_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/err.h"
#include "abacus/log.h"
#include "abacus/snapshot.h"

#define COLLECT_BODY_MAX ((size_t)512 * 1024) /* largest request body, bytes */
#define COLLECT_EVENTS_MAX 500                /* events in one request */
#define COLLECT_EVENT_MAX ((size_t)32 * 1024) /* one event's JSON text, bytes */
#define COLLECT_DEPTH_MAX 16                  /* nesting of the whole body */
#define COLLECT_ID_MAX 200                    /* event id, bytes */
#define COLLECT_UNIT_MAX 256                  /* unit id, bytes */
#define COLLECT_NAME_MAX 200                  /* metric name, bytes */
#define COLLECT_FUTURE_MS ((int64_t)5 * 60 * 1000) /* accepted clock lead after skew correction */

enum collect_format {
    COLLECT_FORMAT_JSON,    /* POST /v1/events, {"events":[...]} */
    COLLECT_FORMAT_NDJSON,  /* POST /v1/events, one event per line */
    COLLECT_FORMAT_SEGMENT, /* POST /v1/batch, {"batch":[...]} of Segment messages */
};

enum collect_type { COLLECT_EXPOSURE, COLLECT_METRIC };

/* Why an event was rejected; the reply and the rejected_events table carry the name. */
enum collect_code {
    COLLECT_MISSING_FIELD,
    COLLECT_WRONG_TYPE,
    COLLECT_INVALID_VALUE,
    COLLECT_UNKNOWN_FIELD,
    COLLECT_UNKNOWN_EXPERIMENT,
    COLLECT_UNKNOWN_VARIANT,
    COLLECT_INVALID_UTF8,
    COLLECT_NUL_IN_STRING,
    COLLECT_EVENT_TOO_LARGE,
    COLLECT_TS_IN_FUTURE,
    COLLECT_UNSUPPORTED_TYPE,
    COLLECT_CODE_COUNT
};

/* snake_case name of a code ("missing_field"). */
const char *collect_code_name(enum collect_code code);

/*
 * One valid event. Strings are NUL-terminated, NUL-free, valid UTF-8, owned by the batch (never
 * by the snapshot, which may be replaced while the batch waits for the writer).
 */
struct collect_event {
    uint32_t index;        /* position in the request */
    enum collect_type type;
    const char *id;
    const char *unit;
    const char *experiment; /* exposures, else NULL */
    const char *variant;    /* exposures, else NULL */
    const char *metric;     /* metric events, else NULL */
    double value;           /* metric events; finite */
    char *attributes;       /* compact JSON object text or NULL; owned by the batch */
    int64_t client_ts;      /* ms since epoch, as sent */
    int64_t ts;             /* ms since epoch, skew-corrected */
    int64_t sent_at;        /* ms, meaningful when has_sent_at */
    int has_sent_at;
    int64_t id_hash;        /* collect_hash64 of id */
    int64_t fingerprint;    /* hash of everything stored but sent_at and received_at */
};

struct collect_rejection {
    uint32_t index;
    enum collect_code code;
    char field[128];   /* "events[3].unit" */
    char message[160];
    const char *raw;   /* the event's bytes (into the request body, which outlives the batch) */
    size_t raw_len;
};

/*
 * A parsed request: what the writer stores in one transaction and what the reply reports. The
 * parser fills the first part; the store fills the result; the glue owns the rest.
 */
struct collect_batch {
    enum collect_format format;
    int64_t received_at; /* ms, server clock */
    json_t *doc;         /* parsed body (or NULL for NDJSON); events point into it */
    json_t **lines;      /* NDJSON: one parsed document per line, [nlines] */
    json_t *strings;     /* array of strings the events point to that are not in the body */
    size_t nlines;
    struct collect_event *events;
    size_t nevents;
    struct collect_rejection *rejected;
    size_t nrejected;
    size_t total;        /* events in the request, valid or not */

    /* set by the store before done_cb */
    enum ab_err rc;      /* AB_OK: committed; AB_ERR_UNAVAILABLE: rolled back (storage fault) */
    size_t accepted;
    size_t duplicates;   /* conflicts included */
    size_t conflicts;    /* same id, other payload: the first one is kept */

    /* glue: called on the writer thread once the batch is committed or rolled back */
    void (*done_cb)(struct collect_batch *b);
    void *owner;
    int thread;
    struct collect_batch *next; /* store queue link */
};

/*
 * Parses and validates a request body (pure: no I/O; time comes from now_ms). Event experiments
 * and variants are checked against snap (may be NULL: every experiment is then unknown).
 * On success *out is a new batch (collect_batch_free) holding the valid events and the rejected
 * ones with code and field. Whole-request refusals, nothing in *out: AB_ERR_INVALID_JSON (syntax,
 * with "line L, column C (byte B)", or nesting over COLLECT_DEPTH_MAX), AB_ERR_TOO_LARGE (over
 * COLLECT_BODY_MAX), AB_ERR_INVALID_FIELD (no events array, more than COLLECT_EVENTS_MAX events).
 * body need not be NUL-terminated; rejections point into it, so it must outlive the batch.
 */
enum ab_err collect_parse(const char *body, size_t len, enum collect_format format,
                          const struct ab_snapshot *snap, int64_t now_ms,
                          struct collect_batch **out, struct ab_errinfo *ei);

/* Accepts NULL. */
void collect_batch_free(struct collect_batch *b);

/* 64-bit hash of s[0..len) (FNV-1a with a final avalanche), as a signed SQLite integer. */
int64_t collect_hash64(const char *s, size_t len);

/*
 * Parses a timestamp: an integer of ms since the epoch, or an RFC 3339 string
 * ("2026-11-24T12:46:02.123Z", "...+02:00"). Returns 0 and *ms, or -1.
 */
int collect_parse_ts(const json_t *v, int64_t *ms);

/* ---------------------------------------------------------------- recent ids (recent.c) */

/*
 * The ids of the most recent events stored: id hash -> the client timestamp the event was stored
 * under. The dedup index is keyed by (client_ts, id hash), which finds a retry only when it
 * carries the same timestamp; this map finds the earlier copy of an id re-sent with another
 * timestamp, as long as that copy is among the last window/2 to window events stored. A hint
 * only: every hit is checked against the database. Writer thread only.
 */
struct collect_recent;

#define COLLECT_RECENT_WINDOW 2000000 /* events; about 34 bytes of memory per event */

/* A map covering the last window/2 .. window puts, or NULL for window < 2 (then no map). */
struct collect_recent *collect_recent_new(size_t window);
void collect_recent_free(struct collect_recent *r); /* accepts NULL */
void collect_recent_put(struct collect_recent *r, int64_t hash, int64_t client_ts);
/* 1 with *client_ts when hash was put recently, else 0. */
int collect_recent_get(const struct collect_recent *r, int64_t hash, int64_t *client_ts);

/* ---------------------------------------------------------------- store (store.c) */

struct collect_store;

struct collect_store_config {
    const char *path;             /* events database, created and migrated when needed */
    size_t queue_max_events;      /* events waiting for the writer; more: submit refuses */
    size_t recent_window;         /* ids kept for dedup across timestamps; 0 =
                                     COLLECT_RECENT_WINDOW */
    const struct ab_log *log;
    const struct ab_clock *clock;
};

/* Commit latency histogram bounds, ns. */
#define COLLECT_LAT_BUCKETS 10
extern const int64_t collect_lat_bounds[COLLECT_LAT_BUCKETS];

struct collect_stats {
    _Atomic uint64_t accepted;
    _Atomic uint64_t duplicates;
    _Atomic uint64_t conflicts;
    _Atomic uint64_t rejected[COLLECT_CODE_COUNT];
    _Atomic uint64_t commits;
    _Atomic uint64_t storage_errors;  /* transactions rolled back by a storage fault */
    _Atomic uint64_t queue_full;      /* requests refused because the queue was full */
    _Atomic uint64_t queue_events;    /* gauge: events waiting */
    _Atomic uint64_t commit_events;   /* gauge: events of the group commit in progress */
    _Atomic uint64_t lat_bucket[COLLECT_LAT_BUCKETS + 1];
    _Atomic uint64_t lat_sum_ns;
    _Atomic int64_t last_seq;         /* seq of the newest committed event (0: none) */
};

/* Opens (creates, migrates) the database and starts the writer thread. */
enum ab_err collect_store_open(const struct collect_store_config *cfg, struct collect_store **out,
                               struct ab_errinfo *ei);

/*
 * Queues b for the writer, which stores it in the next group commit and then calls b->done_cb on
 * its own thread (b->rc says whether it committed). AB_ERR_UNAVAILABLE when the queue is full or
 * the store is closing: b is not taken.
 */
enum ab_err collect_store_submit(struct collect_store *st, struct collect_batch *b);

struct collect_stats *collect_store_stats(struct collect_store *st);

/*
 * Runs fn(db, arg) in its own transaction on the writer thread (after the group commit in
 * progress) and waits for it: how another thread writes to the events database without
 * contending for its write lock. Returns fn's or the commit's error; AB_ERR_UNAVAILABLE when the
 * store is closing.
 */
enum ab_err collect_store_run(struct collect_store *st, ab_db_tx_cb fn, void *arg,
                              struct ab_errinfo *ei);

/* Stores what is queued, stops the writer and closes the database. Accepts NULL. */
void collect_store_close(struct collect_store *st);

/* ---------------------------------------------------------------- forwarder (forward.c) */

struct collect_forward;

struct collect_forward_config {
    const char *url;              /* clickhouse://HOST:PORT/DB */
    const char *db_path;          /* the events database (the outbox), opened again here */
    size_t batch_max;             /* events per INSERT; 0 = 10000 */
    long timeout_ms;              /* per INSERT; 0 = 10000 */
    int64_t retention_ms;         /* forwarded events received longer ago are deleted; 0 keeps */
    size_t outbox_max_events;     /* the quota node.c enforces (reported in /metrics) */
    struct collect_store *store;  /* writes go through its writer (collect_store_run) */
    const struct ab_log *log;
    const struct ab_clock *clock;
};

/*
 * Reads (creating) the forward position of cfg->url in the events database and starts the
 * forwarder thread. Nothing is sent to ClickHouse yet: an unreachable server only delays
 * forwarding (retried with backoff up to 5 s). Errors: AB_ERR_INVALID_FIELD for a bad URL,
 * AB_ERR_STORAGE for the database. The caller owns *out (collect_forward_stop).
 */
enum ab_err collect_forward_start(const struct collect_forward_config *cfg,
                                  struct collect_forward **out, struct ab_errinfo *ei);

/* Committed events not yet acknowledged by ClickHouse (any thread). */
int64_t collect_forward_backlog(struct collect_forward *f);

/* Writes the forwarder's Prometheus metrics. */
void collect_forward_metrics(struct collect_forward *f, FILE *out);

/* Stops the thread (an INSERT in progress finishes or times out first) and frees f. NULL ok. */
void collect_forward_stop(struct collect_forward *f);

#endif
