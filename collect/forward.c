/*
 * The forwarder: ships a collector's committed events to ClickHouse (docs/design.md, "Events",
 * docs/scaling.md). The events table is the durable outbox: one thread reads rows past the
 * forwarded position in seq order, sends them as one INSERT ... FORMAT JSONEachRow, and moves the
 * position (table forward_state) only after ClickHouse acknowledged. Before a new batch leaves,
 * its last seq is recorded as inflight_end, so after a crash the same rows are re-sent under the
 * same query id; a batch that failed or timed out is re-sent as is. Storage stays idempotent
 * because a re-sent row is identical to the first (ReplacingMergeTree keyed by the event id, and
 * the analysis deduplicates on the id). Forwarded events older than the retention are deleted
 * locally. Owns the SQL of forward_state and the outbox reads; node.c starts it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/clickhouse.h"
#include "abacus/db.h"
#include "abacus/jsonw.h"
#include "abacus/mem.h"
#include "collect_int.h"

#define FORWARD_PRUNE_EVERY_MS 10000
#define FORWARD_PRUNE_CHUNK 5000
#define FORWARD_BACKOFF_MAX_MS 5000
#define FORWARD_GROW 8 /* a batch of a forwarder that is behind: up to 8 x --forward-batch */

struct collect_forward {
    struct collect_forward_config cfg;
    char *target;
    char origin[40];
    struct ab_db *db;
    struct ab_ch *ch;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop; /* guarded by mu */
    _Atomic int64_t position;     /* seq of the last acknowledged event */
    _Atomic int64_t oldest_ms;    /* received_at of the oldest unforwarded event, 0 when none */
    _Atomic uint64_t forwarded;   /* events acknowledged by ClickHouse */
    _Atomic uint64_t batches;
    _Atomic uint64_t errors;      /* failed attempts (each is retried) */
    _Atomic uint64_t resent;      /* attempts of a batch sent before (after an error or a crash) */
    _Atomic uint64_t pruned;
    int64_t inflight_end;         /* forwarder thread only */
    int64_t durable;              /* forwarder thread only: the position forward_state holds */
    int failing;                  /* forwarder thread only: the last attempt failed */
};

/* One batch: rows (first - 1, last] as JSONEachRow text. */
struct fbatch {
    struct ab_jsonw body;
    int64_t last;
    int64_t oldest_ms;
    size_t n;
    int attempts;
};

static const char SQL_STATE_INIT[] =
    "INSERT INTO forward_state (target, origin, position, inflight_end)"
    " VALUES (?1, lower(hex(randomblob(8))), 0, 0) ON CONFLICT (target) DO NOTHING";
static const char SQL_STATE_READ[] =
    "SELECT origin, position, inflight_end FROM forward_state WHERE target = ?1";
static const char SQL_STATE_WRITE[] =
    "UPDATE forward_state SET position = ?2, inflight_end = ?3 WHERE target = ?1";
static const char SQL_READ_BATCH[] =
    "SELECT seq, id, type, ts, client_ts, sent_at, received_at, unit, experiment, variant,"
    " metric, value, attributes, source FROM events"
    " WHERE seq > ?1 AND (?2 = 0 OR seq <= ?2) ORDER BY seq LIMIT ?3";
/* seq < position keeps the newest forwarded row, so the rowid never restarts below it */
static const char SQL_PRUNE[] =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events"
    " WHERE seq < ?1 AND received_at < ?2 ORDER BY seq LIMIT ?3)";

static void sleep_or_stop(struct collect_forward *f, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&f->mu);
    if (!f->stop)
        pthread_cond_timedwait(&f->cv, &f->mu, &until);
    pthread_mutex_unlock(&f->mu);
}

static int stopping(struct collect_forward *f)
{
    pthread_mutex_lock(&f->mu);
    int s = f->stop;
    pthread_mutex_unlock(&f->mu);
    return s;
}

struct state_job {
    struct collect_forward *f;
    int64_t position, inflight_end;
};

static enum ab_err state_job_cb(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct state_job *j = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_STATE_WRITE, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, j->f->target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->position);
    sqlite3_bind_int64(st, 3, j->inflight_end);
    return ab_db_step_done(db, st, ei);
}

/* Records the position and the in-flight batch's end (on the writer's connection). */
static enum ab_err write_state(struct collect_forward *f, int64_t position, int64_t inflight_end,
                               struct ab_errinfo *ei)
{
    struct state_job j = {f, position, inflight_end};
    return collect_store_run(f->cfg.store, state_job_cb, &j, ei);
}

static enum ab_err init_job_cb(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_STATE_INIT, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    return ab_db_step_done(db, st, ei);
}

static enum ab_err read_state(struct collect_forward *f, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = collect_store_run(f->cfg.store, init_job_cb, f->target, ei);
    if (rc != AB_OK || (rc = ab_db_prepare(f->db, SQL_STATE_READ, &st, ei)) != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, f->target, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        snprintf(f->origin, sizeof(f->origin), "%s", (const char *)sqlite3_column_text(st, 0));
        atomic_store(&f->position, sqlite3_column_int64(st, 1));
        f->inflight_end = sqlite3_column_int64(st, 2);
        f->durable = atomic_load(&f->position);
    }
    sqlite3_reset(st);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(f->db, s, "reading the forward position", ei);
}

static void put_text_field(struct ab_jsonw *w, const char *key, sqlite3_stmt *st, int col)
{
    ab_jsonw_raw(w, key, strlen(key));
    const unsigned char *t = sqlite3_column_text(st, col);
    const char *s = t != NULL ? (const char *)t : "";
    ab_jsonw_str(w, s, strlen(s));
}

/* Reads the rows after the position (up to upto when not 0) into b as JSONEachRow. */
static enum ab_err read_batch(struct collect_forward *f, int64_t upto, struct fbatch *b,
                              struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(f->db, SQL_READ_BATCH, &st, ei);
    if (rc != AB_OK)
        return rc;
    memset(b, 0, sizeof(*b));
    ab_jsonw_init(&b->body, (size_t)1 << 30);
    int64_t pos = atomic_load(&f->position);
    sqlite3_bind_int64(st, 1, pos);
    sqlite3_bind_int64(st, 2, upto);
    /* a re-sent batch is the whole recorded range, whatever --forward-batch is now; behind by
     * more than a batch, the forwarder takes up to FORWARD_GROW batches at once, so the fixed
     * cost of a batch (an INSERT, a part in ClickHouse, a state write) shrinks per event as the
     * backlog grows, and forwarding catches up with ingest */
    int64_t limit = (int64_t)f->cfg.batch_max;
    if (upto > pos) {
        limit = upto - pos;
    } else {
        int64_t behind = atomic_load(&collect_store_stats(f->cfg.store)->last_seq) - pos;
        if (behind > limit)
            limit = behind < limit * FORWARD_GROW ? behind : limit * FORWARD_GROW;
    }
    sqlite3_bind_int64(st, 3, limit);
    int s;
    struct ab_jsonw *w = &b->body;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        int64_t received = sqlite3_column_int64(st, 6);
        if (b->n == 0)
            b->oldest_ms = received;
        b->n++;
        b->last = seq;
        put_text_field(w, "{\"id\":", st, 1);
        put_text_field(w, ",\"type\":", st, 2);
        ab_jsonw_raw(w, ",\"ts\":", 6);
        ab_jsonw_int(w, sqlite3_column_int64(st, 3));
        ab_jsonw_raw(w, ",\"client_ts\":", 13);
        ab_jsonw_int(w, sqlite3_column_int64(st, 4));
        ab_jsonw_raw(w, ",\"sent_at\":", 11);
        if (sqlite3_column_type(st, 5) == SQLITE_NULL)
            ab_jsonw_raw(w, "null", 4);
        else
            ab_jsonw_int(w, sqlite3_column_int64(st, 5));
        ab_jsonw_raw(w, ",\"received_at\":", 15);
        ab_jsonw_int(w, received);
        put_text_field(w, ",\"unit\":", st, 7);
        put_text_field(w, ",\"experiment\":", st, 8);
        put_text_field(w, ",\"variant\":", st, 9);
        put_text_field(w, ",\"metric\":", st, 10);
        ab_jsonw_raw(w, ",\"value\":", 9);
        ab_jsonw_double(w, sqlite3_column_double(st, 11)); /* NULL (exposures) reads as 0 */
        put_text_field(w, ",\"attributes\":", st, 12);
        put_text_field(w, ",\"source\":", st, 13);
        ab_jsonw_raw(w, ",\"origin\":", 10);
        ab_jsonw_str(w, f->origin, strlen(f->origin));
        ab_jsonw_raw(w, ",\"seq\":", 7);
        ab_jsonw_int(w, seq);
        ab_jsonw_raw(w, "}\n", 2);
    }
    sqlite3_reset(st);
    if (s != SQLITE_DONE)
        rc = ab_db_fail(f->db, s, "reading the outbox", ei);
    else if (w->failed)
        rc = ab_fail(ei, AB_ERR_TOO_LARGE, NULL, "forward batch over 1 GiB");
    if (rc != AB_OK)
        ab_jsonw_dispose(w);
    return rc;
}

struct prune_job {
    int64_t position, cutoff;
    int deleted;
};

static enum ab_err prune_job_cb(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct prune_job *j = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, SQL_PRUNE, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, j->position);
    sqlite3_bind_int64(st, 2, j->cutoff);
    sqlite3_bind_int(st, 3, FORWARD_PRUNE_CHUNK);
    rc = ab_db_step_done(db, st, ei);
    j->deleted = rc == AB_OK ? sqlite3_changes(ab_db_handle(db)) : 0;
    return rc;
}

/*
 * Deletes forwarded events received before now - retention, a chunk per transaction on the
 * writer's connection (so the group commits of new events interleave with the chunks).
 */
static void prune(struct collect_forward *f)
{
    if (f->cfg.retention_ms <= 0)
        return;
    struct prune_job j = {f->durable, /* rows a re-sent batch may need stay */
                          ab_clock_now_ms(f->cfg.clock) - f->cfg.retention_ms, 0};
    while (!stopping(f)) {
        struct ab_errinfo ei;
        if (collect_store_run(f->cfg.store, prune_job_cb, &j, &ei) != AB_OK) {
            AB_LOG_W(f->cfg.log, "collect_forward_prune_failed", "message=\"%s\"", ei.message);
            return;
        }
        atomic_fetch_add(&f->pruned, (uint64_t)j.deleted);
        if (j.deleted < FORWARD_PRUNE_CHUNK)
            return;
    }
}

/* Sends b once; AB_OK when ClickHouse acknowledged it. */
static enum ab_err send_batch(struct collect_forward *f, struct fbatch *b, struct ab_errinfo *ei)
{
    char qid[96];
    snprintf(qid, sizeof(qid), "abacus-%s-%lld-%lld", f->origin,
             (long long)atomic_load(&f->position) + 1, (long long)b->last);
    if (b->attempts++ > 0)
        atomic_fetch_add(&f->resent, 1);
    return ab_ch_exec(f->ch, "INSERT INTO events FORMAT JSONEachRow", qid, b->body.buf,
                      b->body.len, NULL, ei);
}

static void note_failure(struct collect_forward *f, const char *what, const struct ab_errinfo *ei)
{
    atomic_fetch_add(&f->errors, 1);
    if (!f->failing)
        AB_LOG_W(f->cfg.log, "collect_forward_failing", "step=%s message=\"%s\"", what,
                 ei->message);
    f->failing = 1;
}

/*
 * Makes the acknowledged position durable when nothing is in flight (before idling and at
 * stop); while batches flow it is written with the next batch's range instead, one state write
 * per batch. A crash before either re-sends the acknowledged batch, which storage absorbs.
 */
static void settle_position(struct collect_forward *f)
{
    int64_t pos = atomic_load(&f->position);
    struct ab_errinfo ei;
    if (f->durable == pos)
        return;
    if (write_state(f, pos, pos, &ei) != AB_OK) {
        note_failure(f, "position", &ei);
        sleep_or_stop(f, 1000);
        return;
    }
    f->durable = pos;
}

static void *forward_main(void *arg)
{
    struct collect_forward *f = arg;
    struct fbatch b;
    int have = 0, backoff = 100;
    int64_t next_prune = 0;
    while (!stopping(f)) {
        struct ab_errinfo ei;
        int64_t now = ab_clock_now_ms(f->cfg.clock);
        if (now >= next_prune) {
            prune(f);
            next_prune = now + FORWARD_PRUNE_EVERY_MS;
        }
        if (!have) {
            int64_t pos = atomic_load(&f->position);
            int resend = f->inflight_end > pos;
            if (!resend && atomic_load(&collect_store_stats(f->cfg.store)->last_seq) <= pos) {
                atomic_store(&f->oldest_ms, 0);
                settle_position(f);
                sleep_or_stop(f, 20);
                continue;
            }
            if (read_batch(f, resend ? f->inflight_end : 0, &b, &ei) != AB_OK) {
                note_failure(f, "read", &ei);
                sleep_or_stop(f, 1000);
                continue;
            }
            if (b.n == 0) { /* the commit counter ran ahead of what this connection sees */
                ab_jsonw_dispose(&b.body);
                settle_position(f);
                sleep_or_stop(f, 20);
                continue;
            }
            if (resend) {
                b.attempts = 1; /* it may have landed before the crash */
            } else if (write_state(f, pos, b.last, &ei) != AB_OK) {
                ab_jsonw_dispose(&b.body);
                note_failure(f, "record", &ei);
                sleep_or_stop(f, 1000);
                continue;
            } else {
                f->durable = pos;
            }
            f->inflight_end = b.last;
            have = 1;
        }
        atomic_store(&f->oldest_ms, b.oldest_ms);
        if (send_batch(f, &b, &ei) != AB_OK) {
            note_failure(f, "insert", &ei);
            sleep_or_stop(f, backoff);
            backoff = backoff * 2 < FORWARD_BACKOFF_MAX_MS ? backoff * 2 : FORWARD_BACKOFF_MAX_MS;
            continue;
        }
        backoff = 100;
        if (f->failing)
            AB_LOG_I(f->cfg.log, "collect_forward_resumed", "position=%lld", (long long)b.last);
        f->failing = 0;
        /* acknowledged: the position moves, on disk with the next batch's range (or
         * settle_position) */
        atomic_store(&f->position, b.last);
        atomic_fetch_add(&f->forwarded, b.n);
        atomic_fetch_add(&f->batches, 1);
        ab_jsonw_dispose(&b.body);
        have = 0;
    }
    if (have)
        ab_jsonw_dispose(&b.body);
    settle_position(f);
    return NULL;
}

enum ab_err collect_forward_start(const struct collect_forward_config *cfg,
                                  struct collect_forward **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_ch_url url;
    enum ab_err rc = ab_ch_url_parse(cfg->url, strlen(cfg->url), &url, ei);
    if (rc != AB_OK)
        return rc;
    struct collect_forward *f = ab_mem_calloc(1, sizeof(*f));
    f->cfg = *cfg;
    if (f->cfg.batch_max == 0)
        f->cfg.batch_max = 10000;
    if (f->cfg.clock == NULL)
        f->cfg.clock = &ab_clock_system;
    f->target = ab_mem_strdup(cfg->url);
    f->cfg.url = f->target;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    struct ab_db_options dbo = {.sync = AB_DB_SYNC_FULL};
    if ((rc = ab_db_open(cfg->db_path, &dbo, &f->db, ei)) != AB_OK ||
        (rc = read_state(f, ei)) != AB_OK ||
        (rc = ab_ch_new(&url, cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000, &f->ch, ei)) !=
            AB_OK)
        goto Exit;
    if (pthread_create(&f->thread, NULL, forward_main, f) != 0) {
        rc = ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the forwarder thread");
        goto Exit;
    }
    f->started = 1;
    AB_LOG_I(f->cfg.log, "collect_forward", "target=%s origin=%s position=%lld", f->target,
             f->origin, (long long)atomic_load(&f->position));
Exit:
    if (rc == AB_OK)
        *out = f;
    else
        collect_forward_stop(f);
    return rc;
}

int64_t collect_forward_backlog(struct collect_forward *f)
{
    int64_t b = atomic_load(&collect_store_stats(f->cfg.store)->last_seq) - atomic_load(&f->position);
    return b > 0 ? b : 0;
}

void collect_forward_metrics(struct collect_forward *f, FILE *out)
{
    int64_t oldest = atomic_load(&f->oldest_ms);
    int64_t backlog = collect_forward_backlog(f);
    double age = 0;
    if (backlog > 0 && oldest > 0) {
        int64_t d = ab_clock_now_ms(f->cfg.clock) - oldest;
        age = d > 0 ? (double)d / 1000.0 : 0;
    }
    fprintf(out,
            "# HELP abacus_collect_forward_backlog_events Committed events not yet acknowledged "
            "by ClickHouse (the outbox).\n"
            "# TYPE abacus_collect_forward_backlog_events gauge\n"
            "abacus_collect_forward_backlog_events %lld\n"
            "# HELP abacus_collect_forward_oldest_age_seconds Age of the oldest unforwarded "
            "event (since it was received); 0 when the outbox is empty.\n"
            "# TYPE abacus_collect_forward_oldest_age_seconds gauge\n"
            "abacus_collect_forward_oldest_age_seconds %.3f\n"
            "# HELP abacus_collect_forward_position Seq of the last event ClickHouse "
            "acknowledged.\n"
            "# TYPE abacus_collect_forward_position gauge\n"
            "abacus_collect_forward_position %lld\n"
            "# HELP abacus_collect_outbox_max_events Backlog at which requests get 503.\n"
            "# TYPE abacus_collect_outbox_max_events gauge\n"
            "abacus_collect_outbox_max_events %zu\n"
            "# HELP abacus_collect_forwarded_events_total Events acknowledged by ClickHouse.\n"
            "# TYPE abacus_collect_forwarded_events_total counter\n"
            "abacus_collect_forwarded_events_total %llu\n"
            "# HELP abacus_collect_forward_batches_total Batches acknowledged by ClickHouse.\n"
            "# TYPE abacus_collect_forward_batches_total counter\n"
            "abacus_collect_forward_batches_total %llu\n"
            "# HELP abacus_collect_forward_errors_total Failed forwarding attempts (retried).\n"
            "# TYPE abacus_collect_forward_errors_total counter\n"
            "abacus_collect_forward_errors_total %llu\n"
            "# HELP abacus_collect_forward_resent_batches_total Attempts re-sending a batch "
            "that may have landed (after an error, a timeout or a restart).\n"
            "# TYPE abacus_collect_forward_resent_batches_total counter\n"
            "abacus_collect_forward_resent_batches_total %llu\n"
            "# HELP abacus_collect_forward_pruned_events_total Forwarded events deleted "
            "locally after the retention period.\n"
            "# TYPE abacus_collect_forward_pruned_events_total counter\n"
            "abacus_collect_forward_pruned_events_total %llu\n",
            (long long)backlog, age, (long long)atomic_load(&f->position),
            f->cfg.outbox_max_events, (unsigned long long)atomic_load(&f->forwarded),
            (unsigned long long)atomic_load(&f->batches),
            (unsigned long long)atomic_load(&f->errors),
            (unsigned long long)atomic_load(&f->resent),
            (unsigned long long)atomic_load(&f->pruned));
}

void collect_forward_stop(struct collect_forward *f)
{
    if (f == NULL)
        return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        f->stop = 1;
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    ab_ch_free(f->ch);
    ab_db_close(f->db);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->target);
    free(f);
}
