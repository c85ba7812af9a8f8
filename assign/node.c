/*
 * The assign node: holds the current compiled snapshot, swaps in newer ones, and answers the
 * assignment API (DESIGN.md section 4.3) from it.
 *
 * Swapping without a lock on the request path: a request announces the snapshot it uses in its
 * worker thread's hazard slot (store, then re-check that it is still current); the watcher
 * thread publishes a new snapshot with one atomic exchange and releases the old one only when no
 * slot names it. Requests never wait; the watcher does, for at most one request's duration.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "abacus/json.h"
#include "abacus/jsonw.h"
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "assign.h"
#include "assign_int.h"

#define UNIT_MAX 256          /* longest unit id, bytes */
#define ATTR_MAX 32           /* attributes in one GET request */
#define POST_BODY_MAX ((size_t)64 * 1024)
#define RESPONSE_MAX ((size_t)16 * 1024 * 1024) /* an answer larger than this is a 500 */

enum reject_reason {
    REJECT_IO,           /* not a readable SQLite file, or quick_check failed */
    REJECT_INVALID,      /* wrong format or schema, an invalid experiment, does not compile */
    REJECT_OLDER,        /* a version not above the one served */
    REJECT_FETCH,        /* the source did not answer, or not with 200 */
    REJECT_MANIFEST,     /* the manifest is not what the protocol says */
    REJECT_SIZE,         /* the file's size differs from the manifest's */
    REJECT_SHA256,       /* the file's SHA-256 differs from the manifest's */
    REJECT_VERSION,      /* the file holds another version than the manifest announced */
    REJECT_HASH_CONFLICT, /* the manifest gives the served version another hash */
    REJECT_COUNT
};
static const char *const REJECT_NAMES[REJECT_COUNT] = {
    "io", "invalid", "older_version", "fetch", "manifest", "size", "sha256", "version_mismatch",
    "hash_conflict"};

#define CACHE_KEEP 3             /* snapshot files kept in the cache dir */
#define BACKOFF_MAX_MS 300000    /* longest wait before retrying a failed source or candidate */

/* The replication client's state (watcher thread only, but for the counters). */
struct replica {
    char *url;                    /* the manifest */
    char *cache_dir;
    int64_t max_bytes;            /* largest snapshot file accepted */
    CURL *curl;
    uint64_t rng;                 /* xorshift state for the jitter */
    char etag[ASSIGN_ETAG_MAX];   /* of the last manifest read */
    struct assign_manifest last;  /* the last manifest read (valid when last.version > 0) */
    struct assign_manifest bad;   /* the last candidate refused (version 0: none) */
    int bad_attempts;             /* times it failed to download or load */
    int64_t bad_retry_ns;         /* monotonic: not tried again before */
    int fail_streak;              /* manifest fetches failed in a row */
    char sha256[65];              /* of the file being served */
};

struct assign_node {
    char *path;                   /* --snapshot-file, or NULL */
    struct replica *replica;      /* --snapshot-url, or NULL */
    int poll_interval_ms;
    const struct ab_log *log;
    const struct ab_clock *clock;
    _Atomic(struct assign_snap *) current;
    _Atomic(struct assign_snap *) *hazards; /* one per HTTP worker thread */
    int nhazards;
    pthread_t watcher;
    int watcher_started;
    _Atomic int stop;
    _Atomic int poked;            /* check the source now */
    struct stat seen;             /* the file as last tried (watcher thread only) */
    _Atomic int64_t version;      /* current snapshot version, 0 = none */
    _Atomic int64_t created_at;   /* its created_at, ms */
    _Atomic uint64_t loads;
    _Atomic uint64_t polls;       /* manifest requests made */
    _Atomic uint64_t loaded_poll; /* the poll that brought the served snapshot (0: none) */
    _Atomic int64_t last_ok_ms;   /* wall clock of the last manifest the source answered */
    _Atomic uint64_t rejected[REJECT_COUNT];
};

/* ---------------------------------------------------------------- snapshot holder */

static struct assign_snap *acquire(struct assign_node *n, int slot)
{
    struct assign_snap *p;
    do {
        p = atomic_load(&n->current);
        atomic_store(&n->hazards[slot], p);
    } while (atomic_load(&n->current) != p);
    return p;
}

static void release(struct assign_node *n, int slot)
{
    atomic_store(&n->hazards[slot], NULL);
}

/* Publishes snap (taking over its reference) and releases the previous one once unused. */
static void publish(struct assign_node *n, struct assign_snap *snap)
{
    struct assign_snap *old = atomic_exchange(&n->current, snap);
    atomic_store(&n->version, snap->version);
    atomic_store(&n->created_at, snap->created_at);
    atomic_fetch_add(&n->loads, 1);
    atomic_store(&n->loaded_poll, atomic_load(&n->polls));
    if (old == NULL)
        return;
    for (int i = 0; i < n->nhazards; i++)
        while (atomic_load(&n->hazards[i]) == old) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    assign_snap_release(old);
}

static void reject(struct assign_node *n, enum reject_reason r, const char *source,
                   const char *message)
{
    atomic_fetch_add(&n->rejected[r], 1);
    AB_LOG_W(n->log, "snapshot_rejected", "source=%s reason=%s message=\"%s\"", source,
             REJECT_NAMES[r], message);
}

/*
 * The one load path of both modes: reads the snapshot file at path (quick_check, format, every
 * experiment: lib/snapshot), checks its version (that the manifest announced, when expect > 0,
 * and above the served one) and compiles it. On success *out gets the compiled snapshot, ready
 * to publish, and -1 is returned; otherwise the reason, with msg set.
 */
static int prepare(struct assign_node *n, const char *path, int64_t expect,
                   struct assign_snap **out, char *msg, size_t len)
{
    *out = NULL;
    struct ab_snapshot *s = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_snapshot_read(path, &s, &ei);
    if (rc != AB_OK) {
        snprintf(msg, len, "%s%s%s", ei.field, ei.field[0] ? ": " : "", ei.message);
        return rc == AB_ERR_IO ? REJECT_IO : REJECT_INVALID;
    }
    int64_t current = atomic_load(&n->version);
    int reason = -1;
    if (expect > 0 && s->version != expect) {
        snprintf(msg, len, "the file holds version %lld, the manifest announced %lld",
                 (long long)s->version, (long long)expect);
        reason = REJECT_VERSION;
    } else if (s->version <= current) {
        snprintf(msg, len, "version %lld is not newer than %lld", (long long)s->version,
                 (long long)current);
        reason = REJECT_OLDER;
    }
    if (reason < 0) {
        int64_t t0 = ab_clock_mono_ns(n->clock);
        rc = assign_snap_compile(s, out, &ei);
        if (rc != AB_OK) {
            snprintf(msg, len, "%s", ei.message);
            reason = REJECT_INVALID;
        } else {
            AB_LOG_D(n->log, "snapshot_compiled", "version=%lld experiments=%zu compile_ms=%.1f",
                     (long long)s->version, s->nexperiments,
                     (double)(ab_clock_mono_ns(n->clock) - t0) / 1e6);
        }
    }
    ab_snapshot_free(s);
    return reason;
}

/* File mode: loads the file if it changed since the last try and is newer than what is served. */
static void check_file(struct assign_node *n)
{
    struct stat st;
    if (stat(n->path, &st) != 0) {
        if (n->seen.st_size != -1) { /* report a missing file once, not every poll */
            char msg[256];
            snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(errno));
            reject(n, REJECT_IO, n->path, msg);
            memset(&n->seen, 0, sizeof(n->seen));
            n->seen.st_size = -1;
        }
        return;
    }
    if (st.st_ino == n->seen.st_ino && st.st_size == n->seen.st_size &&
        st.st_mtim.tv_sec == n->seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == n->seen.st_mtim.tv_nsec)
        return;
    n->seen = st;
    struct assign_snap *snap = NULL;
    char msg[512];
    int reason = prepare(n, n->path, 0, &snap, msg, sizeof(msg));
    if (reason >= 0) {
        reject(n, (enum reject_reason)reason, n->path, msg);
        return;
    }
    publish(n, snap);
    AB_LOG_I(n->log, "snapshot_loaded", "file=%s version=%lld", n->path,
             (long long)snap->version);
}

/* ---------------------------------------------------------------- replication client */

static uint64_t next_random(struct replica *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

/* The poll interval with +-10 % jitter, so that nodes started together spread their polls. */
static int64_t jittered_ms(struct assign_node *n)
{
    double u = (double)(next_random(n->replica) % 1000000) / 1e6;
    return (int64_t)((double)n->poll_interval_ms * (0.9 + 0.2 * u));
}

/* Exponential backoff after the k-th failure in a row: interval * 2^k, capped, jittered. */
static int64_t backoff_ms(struct assign_node *n, int k)
{
    int64_t ms = n->poll_interval_ms;
    for (int i = 0; i < k && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    double u = (double)(next_random(n->replica) % 1000000) / 1e6;
    return (int64_t)((double)ms * (0.9 + 0.2 * u));
}

static void cache_path(const struct replica *r, int64_t version, char *out, size_t len)
{
    snprintf(out, len, "%s/%lld.db", r->cache_dir, (long long)version);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int64_t cache_version(const char *name)
{
    size_t len = strlen(name);
    if (len < 4 || len > 22 || strcmp(name + len - 3, ".db") != 0 || name[0] < '1' ||
        name[0] > '9')
        return 0;
    int64_t v = 0;
    for (size_t i = 0; i + 3 < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Versions of the snapshot files in the cache dir, newest first, into *out[*n] (free it). */
static void cache_list(const struct replica *r, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(r->cache_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t v = cache_version(e->d_name);
        if (v > 0) {
            *out = ab_mem_realloc(*out, (*n + 1) * sizeof(**out));
            (*out)[(*n)++] = v;
        }
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_desc);
}

/* Deletes all but the newest CACHE_KEEP files (never the one served). */
static void cache_prune(struct assign_node *n)
{
    int64_t *vs;
    size_t count;
    cache_list(n->replica, &vs, &count);
    int64_t served = atomic_load(&n->version);
    for (size_t i = CACHE_KEEP; i < count; i++) {
        if (vs[i] == served)
            continue;
        char path[4096];
        cache_path(n->replica, vs[i], path, sizeof(path));
        unlink(path);
    }
    free(vs);
}

/* On start: serve the newest valid snapshot of the cache dir at once. Invalid ones are counted
 * and removed. */
static void cache_load(struct assign_node *n)
{
    struct replica *r = n->replica;
    int64_t *vs;
    size_t count;
    cache_list(r, &vs, &count);
    for (size_t i = 0; i < count; i++) {
        char path[4096], msg[512];
        cache_path(r, vs[i], path, sizeof(path));
        struct assign_snap *snap = NULL;
        int reason = prepare(n, path, vs[i], &snap, msg, sizeof(msg));
        if (reason >= 0) {
            reject(n, (enum reject_reason)reason, path, msg);
            unlink(path);
            continue;
        }
        int64_t size;
        struct ab_errinfo ei;
        if (ab_snapshot_file_sha256(path, r->sha256, &size, &ei) != AB_OK)
            r->sha256[0] = '\0';
        publish(n, snap);
        AB_LOG_I(n->log, "snapshot_loaded", "file=%s version=%lld source=cache", path,
                 (long long)vs[i]);
        break;
    }
    free(vs);
}

static int same_candidate(const struct assign_manifest *a, const struct assign_manifest *b)
{
    return a->version == b->version && strcmp(a->sha256, b->sha256) == 0;
}

/* A candidate failed: count it, and retry it only after a growing backoff. */
static void candidate_failed(struct assign_node *n, const struct assign_manifest *m,
                             enum reject_reason reason, const char *source, const char *msg)
{
    struct replica *r = n->replica;
    if (!same_candidate(&r->bad, m)) {
        r->bad = *m;
        r->bad_attempts = 0;
    }
    r->bad_attempts++;
    r->bad_retry_ns = ab_clock_mono_ns(n->clock) + backoff_ms(n, r->bad_attempts) * 1000000;
    reject(n, reason, source, msg);
}

/* Downloads, verifies, caches and swaps in the version m announces. */
static void fetch_candidate(struct assign_node *n, const struct assign_manifest *m)
{
    struct replica *r = n->replica;
    char url[2048], tmp[4096], final[4096], msg[512], sha[65];
    struct ab_errinfo ei;
    if (assign_resolve_url(r->url, m->url, url, sizeof(url), &ei) != AB_OK) {
        candidate_failed(n, m, REJECT_MANIFEST, r->url, ei.message);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s/.download-%ld.tmp", r->cache_dir, (long)getpid());
    int64_t size = 0;
    enum assign_fetch_result fr =
        assign_fetch_file(r->curl, url, tmp, m->size, sha, &size, msg, sizeof(msg));
    int reason = -1;
    if (fr == ASSIGN_FETCH_FAILED) {
        reason = REJECT_FETCH;
    } else if (fr == ASSIGN_FETCH_TOO_LARGE || size != m->size) {
        if (fr != ASSIGN_FETCH_TOO_LARGE)
            snprintf(msg, sizeof(msg), "got %lld bytes, the manifest announced %lld",
                     (long long)size, (long long)m->size);
        reason = REJECT_SIZE;
    } else if (strcmp(sha, m->sha256) != 0) {
        snprintf(msg, sizeof(msg), "SHA-256 %s, the manifest announced %s", sha, m->sha256);
        reason = REJECT_SHA256;
    }
    struct assign_snap *snap = NULL;
    if (reason < 0)
        reason = prepare(n, tmp, m->version, &snap, msg, sizeof(msg));
    cache_path(r, m->version, final, sizeof(final));
    if (reason < 0 && (rename(tmp, final) != 0 || fsync_dir(r->cache_dir) != 0)) {
        snprintf(msg, sizeof(msg), "cannot move it into %s: %s", r->cache_dir, strerror(errno));
        reason = REJECT_IO;
        assign_snap_release(snap);
    }
    if (reason >= 0) {
        unlink(tmp);
        candidate_failed(n, m, (enum reject_reason)reason, url, msg);
        return;
    }
    memcpy(r->sha256, sha, sizeof(r->sha256));
    memset(&r->bad, 0, sizeof(r->bad));
    publish(n, snap);
    AB_LOG_I(n->log, "snapshot_loaded", "url=%s version=%lld size=%lld", url,
             (long long)m->version, (long long)size);
    cache_prune(n);
}

/* One poll of the manifest; returns the wait before the next, ms. */
static int64_t poll_source(struct assign_node *n)
{
    struct replica *r = n->replica;
    char body[ASSIGN_MANIFEST_MAX], etag[ASSIGN_ETAG_MAX] = "", msg[512];
    size_t len = 0;
    atomic_fetch_add(&n->polls, 1);
    enum assign_fetch_result fr = assign_fetch_manifest(
        r->curl, r->url, r->last.version > 0 ? r->etag : NULL, body, sizeof(body), &len, etag,
        msg, sizeof(msg));
    struct assign_manifest m;
    if (fr == ASSIGN_FETCH_FAILED || fr == ASSIGN_FETCH_TOO_LARGE) {
        reject(n, fr == ASSIGN_FETCH_FAILED ? REJECT_FETCH : REJECT_MANIFEST, r->url, msg);
        return backoff_ms(n, ++r->fail_streak);
    }
    if (fr == ASSIGN_FETCH_NOT_MODIFIED && r->last.version > 0) {
        m = r->last;
    } else {
        struct ab_errinfo ei;
        if (assign_manifest_parse(body, len, &m, &ei) != AB_OK) {
            snprintf(msg, sizeof(msg), "%s: %s", ei.field, ei.message);
            reject(n, REJECT_MANIFEST, r->url, msg);
            return backoff_ms(n, ++r->fail_streak);
        }
        r->last = m;
        memcpy(r->etag, etag, sizeof(r->etag));
    }
    r->fail_streak = 0;
    atomic_store(&n->last_ok_ms, ab_clock_now_ms(n->clock));
    int64_t current = atomic_load(&n->version);
    if (m.version <= current) {
        /* lower or equal versions are ignored; each odd manifest is counted once */
        int conflict = m.version == current && r->sha256[0] != '\0' &&
                       strcmp(m.sha256, r->sha256) != 0;
        if ((m.version < current || conflict) && !same_candidate(&r->bad, &m)) {
            r->bad = m;
            snprintf(msg, sizeof(msg),
                     conflict ? "version %lld announced with SHA-256 %s, served with %s"
                              : "version %lld (SHA-256 %s) is older than the served one%s",
                     (long long)m.version, m.sha256, conflict ? r->sha256 : "");
            reject(n, conflict ? REJECT_HASH_CONFLICT : REJECT_OLDER, r->url, msg);
        }
        return jittered_ms(n);
    }
    if (same_candidate(&r->bad, &m) && ab_clock_mono_ns(n->clock) < r->bad_retry_ns)
        return jittered_ms(n); /* refused before: retried after its backoff */
    if (m.size > r->max_bytes) {
        snprintf(msg, sizeof(msg), "version %lld announces %lld bytes, over the limit of %lld",
                 (long long)m.version, (long long)m.size, (long long)r->max_bytes);
        candidate_failed(n, &m, REJECT_SIZE, r->url, msg);
        return jittered_ms(n);
    }
    fetch_candidate(n, &m);
    return jittered_ms(n);
}

/* Waits up to ms, returning early on stop or a poke. */
static void wait_ms(struct assign_node *n, int64_t ms)
{
    for (int64_t waited = 0; waited < ms && !atomic_load(&n->stop); waited += 20) {
        if (atomic_exchange(&n->poked, 0))
            return;
        struct timespec ts = {0, 20L * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void *watcher_main(void *arg)
{
    struct assign_node *n = arg;
    int64_t next_ms = n->poll_interval_ms;
    if (n->replica != NULL)
        next_ms = poll_source(n); /* the cache was served first; now ask the source */
    while (!atomic_load(&n->stop)) {
        wait_ms(n, next_ms);
        if (atomic_load(&n->stop))
            break;
        if (n->replica != NULL) {
            next_ms = poll_source(n);
        } else {
            check_file(n);
            next_ms = n->poll_interval_ms;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- answers */

/* Copies t to o; returns the end. */
static char *put_text(char *o, struct assign_text t)
{
    memcpy(o, t.p, t.len);
    return o + t.len;
}

/* write_after_head piece by piece: any answer, in any room. */
__attribute__((noinline)) static void write_pieces(struct ab_jsonw *w, const struct assign_entry *e,
                                                   const struct ab_jsonw *unit_json,
                                                   const struct assign_result *res,
                                                   const struct assign_text *hashed_end)
{
#define TEXT(t) ab_jsonw_raw(w, (t).p, (t).len)
#define KEY(k) ab_jsonw_raw(w, k, sizeof(k) - 1)
    ab_jsonw_raw(w, unit_json->buf, unit_json->len);
    if (res->reason == ASSIGN_HASHED) { /* in the experiment, with its hash */
        TEXT(e->hashed_pre[res->variation]);
        ab_jsonw_double(w, res->bucket);
        TEXT(hashed_end[res->variation]);
        return;
    }
    if (res->in_experiment)
        KEY(",\"in_experiment\":true");
    else
        KEY(",\"in_experiment\":false");
    TEXT(e->variant[res->variation]);
    if (res->hash_used)
        ab_jsonw_double(w, res->bucket);
    else
        KEY("null");
    TEXT(e->payload[res->variation]);
    const char *reason = assign_reason_name(res->reason); /* snake_case: nothing to escape */
    ab_jsonw_raw(w, reason, strlen(reason));
    TEXT(e->tail);
#undef KEY
#undef TEXT
}

/*
 * One assignment as the API reports it, after its head ({"experiment":"KEY","unit":): this is
 * the hot path, so it copies the pieces the snapshot compiled for e (assign_int.h) around the unit
 * (unit_json: the unit as a JSON string, written once per request), the hash and the reason. A
 * unit in the experiment by its hash, the answer most get, ends with hashed_end[v] (e's
 * hashed_post, or its hashed_join) and is assembled inline in room made once.
 */
static inline __attribute__((always_inline)) void
write_after_head(struct ab_jsonw *w, const struct assign_entry *e, const struct ab_jsonw *unit_json,
                 const struct assign_result *res, const struct assign_text *hashed_end)
{
    if (res->reason == ASSIGN_HASHED) {
        struct assign_text pre = e->hashed_pre[res->variation];
        struct assign_text end = hashed_end[res->variation];
        if (ab_jsonw_room(w, unit_json->len + pre.len + 8 + end.len)) {
            char *o = w->buf + w->len;
            memcpy(o, unit_json->buf, unit_json->len);
            char *bucket = put_text(o + unit_json->len, pre);
            if ((o = ab_jsonw_put_bucket(bucket, res->bucket)) != NULL) {
                ab_jsonw_end(w, put_text(o, end));
                return;
            }
        }
    }
    write_pieces(w, e, unit_json, res, hashed_end);
}

/* One assignment, after a comma when comma is set. */
static void write_assignment(struct ab_jsonw *w, const struct assign_entry *e,
                             const struct ab_jsonw *unit_json, const struct assign_result *res,
                             int comma)
{
    if (comma)
        ab_jsonw_raw(w, ",", 1);
    ab_jsonw_raw(w, e->head.p, e->head.len);
    write_after_head(w, e, unit_json, res, e->hashed_post);
}

#define UNIT_JSON_MAX (6 * UNIT_MAX + 2) /* every byte escaped as \u00XX, and the quotes */

/* unit[0..len) as a JSON string into *out, in buf (the caller disposes out). */
static void unit_json(struct ab_jsonw *out, char buf[UNIT_JSON_MAX + 1], const char *unit,
                      size_t len)
{
    ab_jsonw_init_in(out, buf, UNIT_JSON_MAX, UNIT_JSON_MAX);
    ab_jsonw_str(out, unit, len);
}

/* A writer for an answer of about size bytes, in the request's memory. */
static void answer_writer(struct ab_http_req *req, struct ab_jsonw *w, size_t size)
{
    size = size < RESPONSE_MAX ? size : RESPONSE_MAX;
    ab_jsonw_init_in(w, ab_http_alloc(req, size + 1), size, RESPONSE_MAX);
}

/* Sends what w holds, or a 500 when it outgrew its cap. Disposes w. */
static void send_written(struct ab_http_req *req, struct ab_jsonw *w)
{
    if (w->failed)
        ab_http_send_error(req, AB_ERR_INTERNAL, NULL, "the answer exceeds %zu bytes", w->max);
    else if (!w->owned) /* still in the request's memory */
        ab_http_send_kept(req, 200, "application/json", w->buf, w->len);
    else
        ab_http_send(req, 200, "application/json", w->buf, w->len);
    ab_jsonw_dispose(w);
}

static void evaluate(const struct assign_entry *e, const struct assign_attrs *attrs,
                     struct assign_result *res)
{
    struct assign_context ctx = {.attributes = attrs->obj, .index = attrs};
    assign_run(e->exp, &ctx, res);
}

static int not_ready(struct ab_http_req *req, const struct assign_snap *snap)
{
    if (snap != NULL)
        return 0;
    ab_http_add_header(req, "Retry-After", "1");
    ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "no snapshot loaded yet");
    return 1;
}

/* Reads experiment, unit and attr.NAME parameters; answers 400 itself on failure. */
static int read_get_params(struct ab_http_req *req, const char **experiment, const char **unit,
                           json_t *attrs)
{
    const struct ab_url_query *q = ab_http_query(req);
    *experiment = NULL;
    *unit = NULL;
    for (size_t i = 0; i < q->count; i++) {
        const struct ab_url_param *p = &q->params[i];
        const char **slot = strcmp(p->name, "experiment") == 0 ? experiment
                            : strcmp(p->name, "unit") == 0     ? unit
                                                               : NULL;
        if (slot != NULL) {
            if (*slot != NULL) {
                ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "must be given once");
                return -1;
            }
            *slot = p->value;
            continue;
        }
        if (strncmp(p->name, "attr.", 5) != 0 || p->name_len == 5 ||
            strcmp(p->name, "attr.id") == 0) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name,
                               "unknown parameter (use experiment, unit and attr.NAME; the "
                               "unit is the id attribute)");
            return -1;
        }
        if (json_object_get(attrs, p->name + 5) != NULL) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "must be given once");
            return -1;
        }
        if (json_object_size(attrs) >= ATTR_MAX) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "more than %d attributes",
                               ATTR_MAX);
            return -1;
        }
        json_object_set_new(attrs, p->name + 5, json_stringn(p->value, p->value_len));
    }
    const char *missing = *experiment == NULL ? "experiment" : *unit == NULL ? "unit" : NULL;
    if (missing != NULL) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, missing, "is required");
        return -1;
    }
    size_t ulen = strlen(*unit);
    if (ulen == 0 || ulen > UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be 1 to %d bytes", UNIT_MAX);
        return -1;
    }
    json_object_set_new(attrs, "id", json_string(*unit));
    return 0;
}

static void handle_get_assign(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *attrs = json_object();
    const char *experiment, *unit;
    if (read_get_params(req, &experiment, &unit, attrs) != 0) {
        json_decref(attrs);
        return;
    }
    int slot = ab_http_thread(req);
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap)) {
        const struct assign_entry *e = assign_snap_find(snap, experiment);
        if (e == NULL) {
            ab_http_send_error(req, AB_ERR_NOT_FOUND, "experiment", "no experiment %s", experiment);
        } else {
            struct assign_attrs index;
            assign_attrs_index(&index, attrs);
            struct assign_result res;
            evaluate(e, &index, &res);
            struct ab_jsonw w, u;
            char ubuf[UNIT_JSON_MAX + 1];
            unit_json(&u, ubuf, unit, strlen(unit));
            answer_writer(req, &w, e->head.len + u.len + 512);
            write_assignment(&w, e, &u, &res, 0);
            ab_jsonw_dispose(&u);
            send_written(req, &w);
        }
    }
    release(n, slot);
    json_decref(attrs);
}

/* 1 when the request says its body is JSON; else answers 415 itself. */
static int json_content(struct ab_http_req *req)
{
    size_t ctlen = 0;
    const char *ct = ab_http_header(req, "content-type", &ctlen);
    if (ct != NULL && strncmp(ct, "application/json", 16) == 0)
        return 1;
    ab_http_send_error(req, AB_ERR_UNSUPPORTED_MEDIA, "content-type",
                       "send the body as application/json");
    return 0;
}

/* Parses body[0..len) as a JSON object; answers 400/413 itself on failure. */
static json_t *parse_json_object(struct ab_http_req *req, const char *body, size_t len)
{
    struct ab_json_limits lim = {POST_BODY_MAX, 16};
    json_t *doc;
    struct ab_errinfo ei;
    enum ab_err rc = ab_json_parse(body, len, &lim, &doc, &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
        return NULL;
    }
    return doc;
}

/* A POST body that must be a JSON object; answers 400/413/415 itself on failure. */
static json_t *read_json_body(struct ab_http_req *req)
{
    size_t len;
    const char *body = ab_http_body(req, &len);
    return json_content(req) ? parse_json_object(req, body, len) : NULL;
}

/* Validates a POST /v1/assign body; answers 400 itself and returns -1 on failure. */
static int check_post(struct ab_http_req *req, json_t *doc, const char **unit, json_t **attrs)
{
    const json_t *u = json_object_get(doc, "unit");
    if (!json_is_string(u) || json_string_length(u) == 0 || json_string_length(u) > UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be a string of 1 to %d bytes",
                           UNIT_MAX);
        return -1;
    }
    const json_t *a = json_object_get(doc, "attributes");
    if (a != NULL && !json_is_object(a) && !json_is_null(a)) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "attributes", "must be an object");
        return -1;
    }
    const json_t *list = json_object_get(doc, "experiments");
    if (list != NULL && !json_is_null(list)) {
        size_t i;
        const json_t *k;
        if (!json_is_array(list)) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, "experiments",
                               "must be an array of experiment keys");
            return -1;
        }
        json_array_foreach(list, i, k) if (!json_is_string(k))
        {
            char field[48];
            snprintf(field, sizeof(field), "experiments[%zu]", i);
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, field, "must be a string");
            return -1;
        }
    }
    const char *known[] = {"unit", "attributes", "experiments"};
    const char *key;
    const json_t *v;
    json_object_foreach(doc, key, v)
    {
        size_t j = 0;
        while (j < 3 && strcmp(key, known[j]) != 0)
            j++;
        if (j == 3) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, key, "unknown field");
            return -1;
        }
    }
    *unit = json_string_value(u);
    /* the body is ours: the unit becomes the id attribute in place */
    if (json_is_object(a)) {
        *attrs = json_incref((json_t *)a);
    } else {
        *attrs = json_object();
        json_object_set_new(doc, "attributes", json_incref(*attrs));
    }
    json_object_set(*attrs, "id", (json_t *)u);
    return 0;
}

enum { POST_CHUNK = 64 }; /* experiments of a POST evaluated together */

/* The experiments a POST lists: keys read without jansson, or a JSON array; neither: all. */
struct post_list {
    const struct assign_key *keys;
    const json_t *arr;
    size_t n;
};

/* The i-th experiment a POST lists, or NULL, with the 404 sent, for a key the snapshot lacks. */
static const struct assign_entry *post_entry(struct ab_http_req *req,
                                             const struct assign_snap *snap,
                                             const struct post_list *list, size_t i)
{
    struct assign_key k =
        list->keys != NULL ? list->keys[i]
                           : (struct assign_key){json_string_value(json_array_get(list->arr, i)),
                                                 json_string_length(json_array_get(list->arr, i))};
    const struct assign_entry *e = assign_snap_findn(snap, k.p, k.len);
    if (e == NULL) {
        char field[48];
        snprintf(field, sizeof(field), "experiments[%zu]", i);
        ab_http_send_error(req, AB_ERR_NOT_FOUND, field, "no experiment %.*s", (int)k.len, k.p);
    }
    return e;
}

/*
 * The assignments of every running experiment: a unit in one by its hash ends its item with the
 * head of the next (hashed_join), so the next item starts after it.
 */
static void write_running(struct ab_jsonw *w, const struct assign_snap *snap,
                          const struct assign_context *ctx, const struct ab_jsonw *u)
{
    int head_written = 0; /* the next item's comma and head are already in w */
    for (size_t base = 0; base < snap->nrunning; base += POST_CHUNK) {
        size_t m = snap->nrunning - base < POST_CHUNK ? snap->nrunning - base : POST_CHUNK;
        const struct assign_experiment *exps[POST_CHUNK];
        for (size_t i = 0; i < m; i++)
            exps[i] = snap->entries[snap->running[base + i]].exp;
        struct assign_result res[POST_CHUNK];
        assign_run_many(exps, m, ctx, res);
        for (size_t i = 0; i < m; i++) {
            const struct assign_entry *e = &snap->entries[snap->running[base + i]];
            if (!head_written) {
                if (base + i > 0)
                    ab_jsonw_raw(w, ",", 1);
                ab_jsonw_raw(w, e->head.p, e->head.len);
            }
            write_after_head(w, e, u, &res[i], e->hashed_join);
            head_written = res[i].reason == ASSIGN_HASHED;
        }
    }
}

/* Evaluates and answers a POST for the unit unit[0..ulen) with attributes index. */
static void answer_post(struct ab_http_req *req, const struct assign_snap *snap,
                        const struct assign_attrs *index, const char *unit, size_t ulen,
                        const struct post_list *list)
{
    struct ab_jsonw w, u;
    char ubuf[UNIT_JSON_MAX + 1];
    unit_json(&u, ubuf, unit, ulen);
    int listed = list->keys != NULL || list->arr != NULL;
    size_t count = listed ? list->n : snap->nrunning;
    answer_writer(req, &w, 64 + count * (u.len + 256)); /* about what an item takes */
    ab_jsonw_raw(&w, "{\"snapshot_version\":", 20);
    ab_jsonw_int(&w, snap->version);
    ab_jsonw_raw(&w, ",\"assignments\":[", 16);
    int failed = 0;
    struct assign_context ctx = {.attributes = index->obj, .index = index};
    if (!listed)
        write_running(&w, snap, &ctx, &u);
    for (size_t base = 0; listed && base < count && !failed; base += POST_CHUNK) {
        size_t m = count - base < POST_CHUNK ? count - base : POST_CHUNK;
        const struct assign_entry *entries[POST_CHUNK];
        const struct assign_experiment *exps[POST_CHUNK];
        for (size_t i = 0; i < m && !failed; i++) {
            entries[i] = post_entry(req, snap, list, base + i);
            failed = entries[i] == NULL;
            exps[i] = failed ? NULL : entries[i]->exp;
        }
        if (failed)
            break;
        struct assign_result res[POST_CHUNK];
        assign_run_many(exps, m, &ctx, res);
        for (size_t i = 0; i < m; i++)
            write_assignment(&w, entries[i], &u, &res[i], base + i > 0);
    }
    ab_jsonw_raw(&w, "]}", 2);
    ab_jsonw_dispose(&u);
    if (failed)
        ab_jsonw_dispose(&w);
    else
        send_written(req, &w);
}

static void handle_post_assign(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    if (!json_content(req))
        return;
    size_t len;
    const char *body = ab_http_body(req, &len);
    int slot = ab_http_thread(req);
    struct assign_snap *snap = acquire(n, slot);
    /* the usual body needs no jansson; anything else, and every error, goes through jansson */
    struct assign_post post;
    if (snap != NULL && snap->scalar_attributes_ok && len <= POST_BODY_MAX &&
        assign_post_read(body, len, UNIT_MAX, &post)) {
        struct post_list list = {post.has_list ? post.keys : NULL, NULL, post.nkeys};
        answer_post(req, snap, &post.attrs, post.unit, post.unit_len, &list);
        release(n, slot);
        return;
    }
    json_t *doc = parse_json_object(req, body, len);
    const char *unit;
    json_t *attrs = NULL;
    if (doc != NULL && check_post(req, doc, &unit, &attrs) == 0 && !not_ready(req, snap)) {
        struct assign_attrs index;
        assign_attrs_index(&index, attrs);
        const json_t *arr = json_object_get(doc, "experiments");
        struct post_list list = {NULL, json_is_array(arr) ? arr : NULL, json_array_size(arr)};
        answer_post(req, snap, &index, unit, strlen(unit), &list);
    }
    release(n, slot);
    json_decref(attrs);
    json_decref(doc);
}

static int client_key_ok(struct ab_http_req *req, const struct assign_snap *snap)
{
    const char *key = ab_http_param(req, "clientKey");
    if (assign_snap_client_key_ok(snap, key))
        return 1;
    ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "clientKey", "unknown SDK client key");
    return 0;
}

static void handle_features(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    int slot = ab_http_thread(req);
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        ab_http_add_header(req, "ETag", snap->etag);
        ab_http_add_header(req, "Cache-Control", "public, max-age=5");
        const char *inm = ab_http_header(req, "if-none-match", NULL);
        if (inm != NULL && strstr(inm, snap->etag) != NULL)
            ab_http_send(req, 304, "application/json", "", 0);
        else
            ab_http_send(req, 200, "application/json", snap->features_body, snap->features_len);
    }
    release(n, slot);
}

/* One feature evaluated for a unit, as a FeatureDefinition the SDK evaluates to the same. */
static json_t *evaluated_feature(const json_t *result)
{
    json_t *value = json_object_get(result, "value");
    json_t *exp = json_object_get(result, "experiment");
    json_t *rules = json_array();
    if (exp != NULL)
        json_array_append_new(
            rules, json_pack("{s:O, s:[{s:O, s:O}]}", "force", value, "tracks", "experiment", exp,
                             "result", json_object_get(result, "experimentResult")));
    return json_pack("{s:O, s:o}", "defaultValue", value, "rules", rules);
}

static void handle_eval(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *doc = read_json_body(req);
    if (doc == NULL)
        return;
    const json_t *attrs = json_object_get(doc, "attributes");
    const json_t *forced = json_object_get(doc, "forcedVariations");
    const json_t *url = json_object_get(doc, "url");
    if ((attrs != NULL && !json_is_object(attrs) && !json_is_null(attrs)) ||
        (forced != NULL && !json_is_object(forced) && !json_is_null(forced))) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD,
                           json_is_object(attrs) || attrs == NULL ? "forcedVariations"
                                                                  : "attributes",
                           "must be an object");
        json_decref(doc);
        return;
    }
    int slot = ab_http_thread(req);
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        struct assign_context ctx = {
            .attributes = json_is_object(attrs) ? attrs : NULL,
            .forced_variations = json_is_object(forced) ? forced : NULL,
            .url = json_is_string(url) && json_string_length(url) > 0 ? json_string_value(url)
                                                                     : NULL,
        };
        json_t *features = json_object();
        const char *key;
        const json_t *def;
        json_object_foreach(snap->gb_features, key, def)
        {
            (void)def;
            json_t *r = assign_feature_eval(snap->gb_features, key, &ctx);
            json_object_set_new(features, key, evaluated_feature(r));
            json_decref(r);
        }
        ab_http_send_json(req, 200,
                          json_pack("{s:o, s:[], s:I}", "features", features, "experiments",
                                    "snapshotVersion", (json_int_t)snap->version));
    }
    release(n, slot);
    json_decref(doc);
}

/* ---------------------------------------------------------------- readiness and metrics */

static int ready_cb(void *data, char *reason, size_t len)
{
    struct assign_node *n = data;
    if (atomic_load(&n->version) > 0)
        return 1;
    snprintf(reason, len, "no valid snapshot loaded yet from %s",
             n->replica != NULL ? n->replica->url : n->path);
    return 0;
}

static void metrics_cb(void *data, FILE *out)
{
    struct assign_node *n = data;
    int64_t version = atomic_load(&n->version);
    int64_t now = ab_clock_now_ms(n->clock);
    fprintf(out,
            "# HELP abacus_snapshot_version Version of the snapshot being served (0: none).\n"
            "# TYPE abacus_snapshot_version gauge\nabacus_snapshot_version %lld\n",
            (long long)version);
    if (version > 0)
        fprintf(out,
                "# HELP abacus_snapshot_age_seconds Time since the served snapshot was "
                "written.\n# TYPE abacus_snapshot_age_seconds gauge\n"
                "abacus_snapshot_age_seconds %.3f\n",
                (double)(now - atomic_load(&n->created_at)) / 1000.0);
    fprintf(out,
            "# HELP abacus_snapshot_loads_total Snapshots loaded and swapped in.\n"
            "# TYPE abacus_snapshot_loads_total counter\nabacus_snapshot_loads_total %llu\n",
            (unsigned long long)atomic_load(&n->loads));
    if (n->replica != NULL) {
        int64_t ok = atomic_load(&n->last_ok_ms);
        fprintf(out,
                "# HELP abacus_snapshot_polls_total Manifest requests made to the source.\n"
                "# TYPE abacus_snapshot_polls_total counter\nabacus_snapshot_polls_total %llu\n"
                "# HELP abacus_snapshot_loaded_poll The poll that brought the served snapshot "
                "(0: the cache dir).\n# TYPE abacus_snapshot_loaded_poll gauge\n"
                "abacus_snapshot_loaded_poll %llu\n",
                (unsigned long long)atomic_load(&n->polls),
                (unsigned long long)atomic_load(&n->loaded_poll));
        if (ok > 0)
            fprintf(out,
                    "# HELP abacus_snapshot_source_age_seconds Time since the source last "
                    "answered a poll.\n# TYPE abacus_snapshot_source_age_seconds gauge\n"
                    "abacus_snapshot_source_age_seconds %.3f\n",
                    (double)(now - ok) / 1000.0);
    }
    fputs("# HELP abacus_snapshot_rejected_total Snapshots refused (the served one is kept), by "
          "reason.\n# TYPE abacus_snapshot_rejected_total counter\n",
          out);
    for (int r = 0; r < REJECT_COUNT; r++)
        fprintf(out, "abacus_snapshot_rejected_total{reason=\"%s\"} %llu\n", REJECT_NAMES[r],
                (unsigned long long)atomic_load(&n->rejected[r]));
}

/* ---------------------------------------------------------------- lifecycle */

static enum ab_err replica_new(const struct assign_node_config *cfg, struct replica **out,
                               struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->cache_dir == NULL || cfg->cache_dir[0] == '\0')
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "cache-dir", "is required with a snapshot URL");
    if (strncmp(cfg->snapshot_url, "http://", 7) != 0 &&
        strncmp(cfg->snapshot_url, "https://", 8) != 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "snapshot-url", "must be an http(s) URL");
    if (mkdir(cfg->cache_dir, 0750) != 0 && errno != EEXIST)
        return ab_fail(ei, AB_ERR_IO, "cache-dir", "cannot create %s: %s", cfg->cache_dir,
                       strerror(errno));
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "libcurl cannot initialize");
    struct replica *r = ab_mem_calloc(1, sizeof(*r));
    r->url = ab_mem_strdup(cfg->snapshot_url);
    r->cache_dir = ab_mem_strdup(cfg->cache_dir);
    r->max_bytes = cfg->max_snapshot_bytes > 0 ? cfg->max_snapshot_bytes : (int64_t)1 << 30;
    r->curl = curl_easy_init();
    r->rng = cfg->jitter_seed != 0 ? cfg->jitter_seed
                                   : (uint64_t)ab_clock_mono_ns(cfg->clock) ^
                                         ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    if (r->rng == 0)
        r->rng = 1;
    *out = r;
    return AB_OK;
}

static void replica_free(struct replica *r)
{
    if (r == NULL)
        return;
    curl_easy_cleanup(r->curl);
    curl_global_cleanup();
    free(r->url);
    free(r->cache_dir);
    free(r);
}

enum ab_err assign_node_new(const struct assign_node_config *cfg, struct assign_node **out,
                            struct ab_errinfo *ei)
{
    int file = cfg->snapshot_file != NULL && cfg->snapshot_file[0] != '\0';
    int url = cfg->snapshot_url != NULL && cfg->snapshot_url[0] != '\0';
    if (file == url)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "snapshot-url",
                       "give either a snapshot URL (with a cache dir) or a snapshot file");
    struct replica *r = NULL;
    enum ab_err rc = url ? replica_new(cfg, &r, ei) : AB_OK;
    if (rc != AB_OK)
        return rc;
    struct assign_node *n = ab_mem_calloc(1, sizeof(*n));
    n->path = file ? ab_mem_strdup(cfg->snapshot_file) : NULL;
    n->replica = r;
    n->poll_interval_ms = cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 5000;
    n->log = cfg->log;
    n->clock = cfg->clock != NULL ? cfg->clock : &ab_clock_system;
    *out = n;
    return AB_OK;
}

enum ab_err assign_node_mount(struct assign_node *n, struct ab_http_server *srv,
                              struct ab_errinfo *ei)
{
    n->nhazards = ab_http_server_threads(srv);
    n->hazards = ab_mem_calloc((size_t)n->nhazards, sizeof(*n->hazards));
    enum ab_err rc;
    if ((rc = ab_http_route(srv, "GET", "/v1/assign", handle_get_assign, n, 0, ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/v1/assign", handle_post_assign, n, POST_BODY_MAX,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "GET", "/api/features/{clientKey}", handle_features, n, 0,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/api/eval/{clientKey}", handle_eval, n, POST_BODY_MAX,
                            ei)) != AB_OK)
        return rc;
    ab_http_add_ready_check(srv, ready_cb, n);
    ab_http_add_metrics(srv, metrics_cb, n);
    return AB_OK;
}

enum ab_err assign_node_start(struct assign_node *n, struct ab_errinfo *ei)
{
    if (n->replica != NULL)
        cache_load(n); /* the source is asked by the watcher, after this */
    else
        check_file(n);
    if (pthread_create(&n->watcher, NULL, watcher_main, n) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the snapshot watcher");
    n->watcher_started = 1;
    return AB_OK;
}

void assign_node_poke(struct assign_node *n)
{
    atomic_store(&n->poked, 1);
}

void assign_node_stop(struct assign_node *n)
{
    if (n == NULL || !n->watcher_started)
        return;
    atomic_store(&n->stop, 1);
    pthread_join(n->watcher, NULL);
    n->watcher_started = 0;
}

void assign_node_free(struct assign_node *n)
{
    if (n == NULL)
        return;
    assign_node_stop(n);
    assign_snap_release(atomic_load(&n->current));
    replica_free(n->replica);
    free(n->hazards);
    free(n->path);
    free(n);
}
