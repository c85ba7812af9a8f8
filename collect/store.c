/*
 * The collector's storage: one writer thread owns the events database (WAL, synchronous=FULL)
 * and stores every queued batch in group commits: each transaction takes all the batches that
 * arrived while the previous one committed, so many requests share one fsync and none waits for
 * more than the commit in progress. A batch's done_cb runs only after its transaction committed
 * (b->rc = AB_OK) or was rolled back by a storage fault (AB_ERR_UNAVAILABLE: disk full, I/O error,
 * busy); the next transaction simply tries again, so the store resumes by itself once the fault
 * clears. The queue is bounded in events; submit refuses beyond it (the caller answers 503).
 * Other threads' writes to the database (the forwarder's position and pruning) run here too, as
 * jobs after the group commit (collect_store_run): one writer, so they never wait for its lock.
 * All SQL of the events tables lives here. Called by node.c; see docs/collector.md.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/db.h"
#include "abacus/mem.h"
#include "abacus/migrate.h"
#include "collect.h"
#include "collect_int.h"

const int64_t collect_lat_bounds[COLLECT_LAT_BUCKETS] = {
    500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000,
    1000000000};

/* Work of another thread run on the writer's connection (collect_store_run). */
struct store_job {
    ab_db_tx_cb fn;
    void *arg;
    enum ab_err rc;
    struct ab_errinfo ei;
    int done; /* guarded by mu */
    struct store_job *next;
};

struct collect_store {
    struct ab_db *db;
    const struct ab_log *log;
    const struct ab_clock *clock;
    size_t queue_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct collect_batch *head, *tail; /* FIFO, guarded by mu */
    struct store_job *jobs;            /* guarded by mu */
    pthread_cond_t done_cv;            /* a job finished */
    size_t queued;                     /* events in the queue, guarded by mu */
    int stop;                          /* guarded by mu */
    int faulted;                       /* writer thread only: the last commit failed */
    pthread_t writer;
    int started;
    struct collect_stats stats;
    struct collect_recent *recent; /* writer thread only (and open, before it starts) */
    size_t recent_window;
};

static const char SQL_LOOKUP[] = "SELECT id, fingerprint FROM events "
                                 "WHERE client_ts = ?1 AND id_hash = ?2";
static const char SQL_INSERT[] =
    "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, sent_at, received_at, "
    "unit, experiment, variant, metric, value, attributes, source) "
    "VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) "
    "ON CONFLICT (client_ts, id_hash) DO NOTHING";
static const char SQL_MAX_SEQ[] = "SELECT COALESCE(MAX(seq), 0) FROM events";
static const char SQL_REJECT[] =
    "INSERT INTO rejected_events (received_at, source, request_index, code, field, message, raw) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/*
 * Who holds the dedup slot (client_ts, hash): *found 0 nobody; else *is_ev 1 when it is ev's id
 * (*same_fp set), 0 another id.
 */
static enum ab_err slot_owner(struct ab_db *db, const struct collect_event *ev, int64_t client_ts,
                              int64_t hash, int *found, int *is_ev, int *same_fp,
                              struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_LOOKUP, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, client_ts);
    sqlite3_bind_int64(st, 2, hash);
    int src = sqlite3_step(st);
    *is_ev = 0;
    *found = src == SQLITE_ROW;
    if (src == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        *is_ev = id != NULL && strcmp(id, ev->id) == 0;
        *same_fp = sqlite3_column_int64(st, 1) == ev->fingerprint;
    } else if (src != SQLITE_DONE) {
        rc = ab_db_fail(db, src, "dedup lookup failed", ei);
    }
    sqlite3_reset(st);
    return rc;
}

/* Tries to insert ev into the slot (client_ts, hash); *inserted is 0 when the slot is taken. */
static enum ab_err insert_event(struct ab_db *db, const struct collect_batch *b,
                                const struct collect_event *ev, int64_t hash, int *inserted,
                                struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_INSERT, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, hash);
    sqlite3_bind_int64(st, 4, ev->fingerprint);
    sqlite3_bind_text(st, 5, ev->type == COLLECT_EXPOSURE ? "exposure" : "metric", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, ev->ts);
    sqlite3_bind_int64(st, 7, ev->client_ts);
    if (ev->has_sent_at)
        sqlite3_bind_int64(st, 8, ev->sent_at);
    else
        sqlite3_bind_null(st, 8);
    sqlite3_bind_int64(st, 9, b->received_at);
    sqlite3_bind_text(st, 10, ev->unit, -1, SQLITE_STATIC);
    bind_text_or_null(st, 11, ev->experiment);
    bind_text_or_null(st, 12, ev->variant);
    bind_text_or_null(st, 13, ev->metric);
    if (ev->type == COLLECT_METRIC)
        sqlite3_bind_double(st, 14, ev->value);
    else
        sqlite3_bind_null(st, 14);
    bind_text_or_null(st, 15, ev->attributes);
    sqlite3_bind_text(st, 16, b->format == COLLECT_FORMAT_SEGMENT ? "segment" : "events", -1,
                      SQLITE_STATIC);
    rc = ab_db_step_done(db, st, ei);
    *inserted = rc == AB_OK && sqlite3_changes(ab_db_handle(db)) == 1;
    return rc;
}

/*
 * Stores ev unless its id is already stored: *seen 0 stored, 1 duplicate, 2 duplicate with
 * another payload. The unique (client_ts, id_hash) index finds the duplicate during the insert;
 * a slot held by another id (a 64-bit hash collision within one ms) sends ev to the next hash
 * value, as a lookup of the same id will.
 */
static enum ab_err store_event(struct ab_db *db, struct collect_recent *recent,
                               const struct collect_batch *b, const struct collect_event *ev,
                               int *seen, struct ab_errinfo *ei)
{
    /* the same id stored recently under another timestamp: a duplicate with another payload
     * (the map is a hint: the row is looked up, through the same hash probing as below) */
    int64_t ts0;
    if (collect_recent_get(recent, ev->id_hash, &ts0) && ts0 != ev->client_ts) {
        for (uint64_t hash = (uint64_t)ev->id_hash;; hash++) {
            int found = 0, is_ev = 0, same_fp = 0;
            enum ab_err rc = slot_owner(db, ev, ts0, (int64_t)hash, &found, &is_ev, &same_fp, ei);
            if (rc != AB_OK)
                return rc;
            if (is_ev) {
                *seen = 2;
                return AB_OK;
            }
            if (!found)
                break;
        }
    }
    uint64_t hash = (uint64_t)ev->id_hash;
    for (;; hash++) {
        int inserted = 0, found = 0, is_ev = 0, same_fp = 0;
        enum ab_err rc = insert_event(db, b, ev, (int64_t)hash, &inserted, ei);
        if (rc == AB_OK && !inserted)
            rc = slot_owner(db, ev, ev->client_ts, (int64_t)hash, &found, &is_ev, &same_fp, ei);
        if (rc != AB_OK)
            return rc;
        if (inserted || is_ev) {
            if (inserted)
                collect_recent_put(recent, ev->id_hash, ev->client_ts);
            *seen = inserted ? 0 : same_fp ? 1 : 2;
            return AB_OK;
        }
    }
}

static enum ab_err insert_rejection(struct ab_db *db, const struct collect_batch *b,
                                    const struct collect_rejection *r, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_REJECT, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, b->received_at);
    sqlite3_bind_text(st, 2, b->format == COLLECT_FORMAT_SEGMENT ? "segment" : "events", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, r->index);
    sqlite3_bind_text(st, 4, collect_code_name(r->code), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->field, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, r->message, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->raw_len > 0 ? r->raw : "", (int)r->raw_len, SQLITE_STATIC);
    return ab_db_step_done(db, st, ei);
}

/* One group commit: the batches of list, deduplicated with the store's recent ids. */
struct group {
    struct collect_store *st;
    struct collect_batch *list;
};

static enum ab_err store_group(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    const struct group *gr = arg;
    enum ab_err rc = AB_OK;
    for (struct collect_batch *b = gr->list; b != NULL; b = b->next) {
        b->accepted = b->duplicates = b->conflicts = 0;
        for (size_t i = 0; i < b->nevents; i++) {
            const struct collect_event *ev = &b->events[i];
            int seen = 0;
            if ((rc = store_event(db, gr->st->recent, b, ev, &seen, ei)) != AB_OK)
                return rc;
            b->accepted += seen == 0;
            b->duplicates += seen != 0;
            b->conflicts += seen == 2;
        }
        for (size_t i = 0; i < b->nrejected; i++)
            if ((rc = insert_rejection(db, b, &b->rejected[i], ei)) != AB_OK)
                return rc;
    }
    return rc;
}

/* Tests only: applies the page limit named by the max-pages file (see collect.h). */
static void count(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static void record_commit(struct collect_store *st, struct collect_batch *list, enum ab_err rc,
                          int64_t elapsed_ns, const struct ab_errinfo *ei)
{
    struct collect_stats *s = &st->stats;
    size_t b = 0;
    while (b < COLLECT_LAT_BUCKETS && elapsed_ns > collect_lat_bounds[b])
        b++;
    count(&s->lat_bucket[b], 1);
    count(&s->lat_sum_ns, elapsed_ns > 0 ? (uint64_t)elapsed_ns : 0);
    if (rc != AB_OK) {
        count(&s->storage_errors, 1);
        if (!st->faulted)
            AB_LOG_E(st->log, "collect_storage_fault", "error=%s message=\"%s\"",
                     ab_err_code(rc), ei->message);
        st->faulted = 1;
        return;
    }
    if (st->faulted)
        AB_LOG_I(st->log, "collect_storage_resumed", NULL);
    st->faulted = 0;
    count(&s->commits, 1);
    for (; list != NULL; list = list->next) {
        count(&s->accepted, list->accepted);
        count(&s->duplicates, list->duplicates);
        count(&s->conflicts, list->conflicts);
        for (size_t i = 0; i < list->nrejected; i++)
            count(&s->rejected[list->rejected[i].code], 1);
    }
}

static enum ab_err max_seq(struct ab_db *db, int64_t *out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    *out = 0;
    enum ab_err rc = ab_db_prepare(db, SQL_MAX_SEQ, &st, ei);
    if (rc != AB_OK)
        return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(db, s, "reading the last seq", ei);
}

static void run_jobs(struct collect_store *st, struct store_job *jobs)
{
    while (jobs != NULL) {
        struct store_job *next = jobs->next;
        enum ab_err rc = ab_db_transaction(st->db, jobs->fn, jobs->arg, &jobs->ei);
        pthread_mutex_lock(&st->mu);
        jobs->rc = rc;
        jobs->done = 1;
        pthread_cond_broadcast(&st->done_cv);
        pthread_mutex_unlock(&st->mu);
        jobs = next;
    }
}

static void *writer_main(void *arg)
{
    struct collect_store *st = arg;
    pthread_mutex_lock(&st->mu);
    while (1) {
        while (st->head == NULL && st->jobs == NULL && !st->stop)
            pthread_cond_wait(&st->cv, &st->mu);
        if (st->head == NULL && st->jobs == NULL)
            break; /* stopping, and nothing left */
        struct collect_batch *list = st->head;
        struct store_job *jobs = st->jobs;
        st->head = st->tail = NULL;
        st->jobs = NULL;
        st->queued = 0;
        atomic_store_explicit(&st->stats.queue_events, 0, memory_order_relaxed);
        pthread_mutex_unlock(&st->mu);

        if (list != NULL) {
            uint64_t nev = 0;
            for (const struct collect_batch *b = list; b != NULL; b = b->next)
                nev += b->nevents + b->nrejected;
            atomic_store_explicit(&st->stats.commit_events, nev, memory_order_relaxed);
            struct ab_errinfo ei;
            int64_t t0 = ab_clock_mono_ns(st->clock);
            struct group gr = {st, list};
            enum ab_err rc = ab_db_transaction(st->db, store_group, &gr, &ei);
            record_commit(st, list, rc, ab_clock_mono_ns(st->clock) - t0, &ei);
            atomic_store_explicit(&st->stats.commit_events, 0, memory_order_relaxed);
            int64_t seq;
            if (rc == AB_OK && max_seq(st->db, &seq, &ei) == AB_OK) /* O(log n): the rowid's end */
                atomic_store(&st->stats.last_seq, seq);
            while (list != NULL) {
                struct collect_batch *next = list->next;
                list->next = NULL;
                list->rc = rc == AB_OK ? AB_OK : AB_ERR_UNAVAILABLE;
                list->done_cb(list); /* may free the batch */
                list = next;
            }
        }
        run_jobs(st, jobs);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* The ids of the newest stored events into the recent map (half its window: no rotation). */
static enum ab_err load_recent(struct collect_store *st, struct ab_errinfo *ei)
{
    sqlite3_stmt *q;
    enum ab_err rc = ab_db_prepare(
        st->db, "SELECT id, client_ts FROM events ORDER BY seq DESC LIMIT ?1", &q, ei);
    if (rc != AB_OK || st->recent == NULL)
        return rc;
    sqlite3_bind_int64(q, 1, (sqlite3_int64)(st->recent_window / 2));
    int s;
    while ((s = sqlite3_step(q)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(q, 0);
        int64_t hash = collect_hash64(id, (size_t)sqlite3_column_bytes(q, 0));
        int64_t ts0;
        if (!collect_recent_get(st->recent, hash, &ts0)) /* newest first: keep the newest */
            collect_recent_put(st->recent, hash, sqlite3_column_int64(q, 1));
    }
    sqlite3_reset(q);
    return s == SQLITE_DONE ? AB_OK : ab_db_fail(st->db, s, "reading the recent event ids", ei);
}

enum ab_err collect_store_open(const struct collect_store_config *cfg, struct collect_store **out,
                               struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_db_options dbo = {.sync = AB_DB_SYNC_FULL};
    struct ab_db *db = NULL;
    enum ab_err rc = ab_db_open(cfg->path, &dbo, &db, ei);
    if (rc == AB_OK)
        rc = ab_migrate(db, collect_migrations, collect_migrations_count, NULL, NULL, ei);
    /* the dedup index's recent end and the table's last pages stay cached (32 MiB) */
    if (rc == AB_OK)
        rc = ab_db_exec(db, "PRAGMA cache_size = -32768", ei);
    int64_t last_seq = 0;
    if (rc == AB_OK)
        rc = max_seq(db, &last_seq, ei);
    if (rc != AB_OK) {
        ab_db_close(db);
        return rc;
    }
    struct collect_store *st = ab_mem_calloc(1, sizeof(*st));
    atomic_store(&st->stats.last_seq, last_seq);
    st->db = db;
    st->log = cfg->log;
    st->clock = cfg->clock != NULL ? cfg->clock : &ab_clock_system;
    st->queue_max = cfg->queue_max_events > 0 ? cfg->queue_max_events : 32768;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_cond_init(&st->done_cv, NULL);
    st->recent_window = cfg->recent_window > 0 ? cfg->recent_window : COLLECT_RECENT_WINDOW;
    st->recent = collect_recent_new(st->recent_window);
    if ((rc = load_recent(st, ei)) != AB_OK) {
        collect_store_close(st);
        return rc;
    }
    if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
        collect_store_close(st);
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the event writer thread");
    }
    st->started = 1;
    *out = st;
    return AB_OK;
}

enum ab_err collect_store_submit(struct collect_store *st, struct collect_batch *b)
{
    size_t n = b->nevents + b->nrejected;
    pthread_mutex_lock(&st->mu);
    /* an empty queue takes any batch, so a request within the limits always gets its turn */
    if (st->stop || (st->queued > 0 && st->queued + n > st->queue_max)) {
        int stopping = st->stop;
        pthread_mutex_unlock(&st->mu);
        count(&st->stats.queue_full, !stopping);
        return AB_ERR_UNAVAILABLE;
    }
    b->next = NULL;
    if (st->tail != NULL)
        st->tail->next = b;
    else
        st->head = b;
    st->tail = b;
    st->queued += n;
    atomic_store_explicit(&st->stats.queue_events, st->queued, memory_order_relaxed);
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return AB_OK;
}

enum ab_err collect_store_run(struct collect_store *st, ab_db_tx_cb fn, void *arg,
                              struct ab_errinfo *ei)
{
    struct store_job job = {fn, arg, AB_OK, {"", ""}, 0, NULL};
    pthread_mutex_lock(&st->mu);
    if (st->stop) {
        pthread_mutex_unlock(&st->mu);
        return ab_fail(ei, AB_ERR_UNAVAILABLE, NULL, "the event store is closing");
    }
    struct store_job **tail = &st->jobs;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = &job;
    pthread_cond_signal(&st->cv);
    while (!job.done)
        pthread_cond_wait(&st->done_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    if (job.rc != AB_OK && ei != NULL)
        *ei = job.ei;
    return job.rc;
}

struct collect_stats *collect_store_stats(struct collect_store *st)
{
    return &st->stats;
}

void collect_store_close(struct collect_store *st)
{
    if (st == NULL)
        return;
    if (st->started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->done_cv);
    ab_db_close(st->db);
    collect_recent_free(st->recent);
    free(st);
}

/* --- reading, for the nightly report ---------------------------------------------------------- */

enum ab_err collect_rejected_count(struct ab_db *db, int64_t from_ms, int64_t to_ms,
                                   int64_t *count, struct ab_errinfo *ei)
{
    *count = 0;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT COUNT(*) FROM rejected_events WHERE received_at >= ?1 AND received_at < ?2",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, from_ms);
    sqlite3_bind_int64(st, 2, to_ms);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *count = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(db, s, "counting rejected events", ei);
}
