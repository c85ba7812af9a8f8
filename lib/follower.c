/*
 * The snapshot follower (see abacus/follower.h). Its thread owns everything but the counters,
 * which /metrics reads from any thread. Replication state: the last manifest read and its ETag,
 * the last candidate refused (retried only after a growing backoff), the failures of the source
 * in a row, and the SHA-256 of the file in use, which tells a conflicting manifest for the same
 * version apart from a repeat.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "abacus/follower.h"
#include "abacus/mem.h"
#include "abacus/replica.h"

enum reject_reason {
    REJECT_IO,            /* not a readable SQLite file, or quick_check failed */
    REJECT_INVALID,       /* wrong format or schema, an invalid experiment, or refused */
    REJECT_OLDER,         /* a version not above the one in use */
    REJECT_FETCH,         /* the source did not answer, or not with 200 */
    REJECT_MANIFEST,      /* the manifest is not what the protocol says */
    REJECT_SIZE,          /* the file's size differs from the manifest's */
    REJECT_SHA256,        /* the file's SHA-256 differs from the manifest's */
    REJECT_VERSION,       /* the file holds another version than the manifest announced */
    REJECT_HASH_CONFLICT, /* the manifest gives the version in use another hash */
    REJECT_COUNT
};
static const char *const REJECT_NAMES[REJECT_COUNT] = {
    "io", "invalid", "older_version", "fetch", "manifest", "size", "sha256", "version_mismatch",
    "hash_conflict"};

#define CACHE_KEEP 3          /* snapshot files kept in the cache dir */
#define BACKOFF_MAX_MS 300000 /* longest wait before retrying a failed source or candidate */
#define NO_REASON (-1)

struct ab_follower {
    char *path;      /* file mode, or NULL */
    char *url;       /* replication mode (the manifest), or NULL */
    char *cache_dir; /* replication mode */
    char *prefix;    /* of the metric names */
    char *component;
    int poll_interval_ms;
    int64_t max_bytes;
    ab_follower_ready_cb ready;
    void *data;
    const struct ab_log *log;
    const struct ab_clock *clock;
    /* the thread's own */
    struct stat seen; /* file mode: the file as last tried */
    CURL *curl;
    uint64_t rng;                            /* xorshift state for the jitter */
    char etag[AB_REPLICA_ETAG_MAX];          /* of the last manifest read */
    struct ab_replica_manifest last;         /* the last manifest read (valid when version > 0) */
    struct ab_replica_manifest bad;          /* the last candidate refused (version 0: none) */
    int bad_attempts;                        /* times it failed to download or load */
    int64_t bad_retry_ns;                    /* monotonic: not tried again before */
    int fail_streak;                         /* manifest fetches failed in a row */
    char sha256[65];                         /* of the file in use */
    pthread_t thread;
    int started;
    _Atomic int stop;
    _Atomic int poked;
    /* read by any thread */
    _Atomic int64_t version;      /* handed over last, 0 = none */
    _Atomic int64_t created_at;   /* its created_at, ms */
    _Atomic uint64_t loads;
    _Atomic uint64_t polls;       /* manifest requests made */
    _Atomic uint64_t loaded_poll; /* the poll that brought the version in use (0: none) */
    _Atomic int64_t last_ok_ms;   /* wall clock of the last manifest the source answered */
    _Atomic uint64_t rejected[REJECT_COUNT];
};

static void reject(struct ab_follower *f, enum reject_reason r, const char *source,
                   const char *message)
{
    atomic_fetch_add(&f->rejected[r], 1);
    AB_LOG_W(f->log, "snapshot_rejected", "component=%s source=%s reason=%s message=\"%s\"",
             f->component, source, REJECT_NAMES[r], message);
}

/*
 * Reads the snapshot file at path (lib/snapshot's checks) and checks its version: the one the
 * manifest announced when expect > 0, and above the one in use. Returns NO_REASON with *out set,
 * or the reason with msg set.
 */
static int check(struct ab_follower *f, const char *path, int64_t expect, struct ab_snapshot **out,
                 char *msg, size_t len)
{
    *out = NULL;
    struct ab_snapshot *s = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_snapshot_read(path, &s, &ei);
    if (rc != AB_OK) {
        snprintf(msg, len, "%s%s%s", ei.field, ei.field[0] ? ": " : "", ei.message);
        return rc == AB_ERR_IO ? REJECT_IO : REJECT_INVALID;
    }
    int64_t current = atomic_load(&f->version);
    if (expect > 0 && s->version != expect) {
        snprintf(msg, len, "the file holds version %lld, the manifest announced %lld",
                 (long long)s->version, (long long)expect);
        ab_snapshot_free(s);
        return REJECT_VERSION;
    }
    if (s->version <= current) {
        snprintf(msg, len, "version %lld is not newer than %lld", (long long)s->version,
                 (long long)current);
        ab_snapshot_free(s);
        return REJECT_OLDER;
    }
    *out = s;
    return NO_REASON;
}

/* Hands s over to the component; returns NO_REASON when it took it, else the reason. */
static int hand_over(struct ab_follower *f, struct ab_snapshot *s, char *msg, size_t len)
{
    int64_t version = s->version, created_at = s->created_at;
    struct ab_errinfo ei;
    if (f->ready(f->data, s, &ei) != AB_OK) {
        snprintf(msg, len, "%s", ei.message);
        return REJECT_INVALID;
    }
    atomic_store(&f->version, version);
    atomic_store(&f->created_at, created_at);
    atomic_fetch_add(&f->loads, 1);
    atomic_store(&f->loaded_poll, atomic_load(&f->polls));
    return NO_REASON;
}

/* File mode: loads the file if it changed since the last try and is newer than the one in use. */
static void check_file(struct ab_follower *f)
{
    struct stat st;
    if (stat(f->path, &st) != 0) {
        if (f->seen.st_size != -1) { /* report a missing file once, not every poll */
            char msg[256];
            snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(errno));
            reject(f, REJECT_IO, f->path, msg);
            memset(&f->seen, 0, sizeof(f->seen));
            f->seen.st_size = -1;
        }
        return;
    }
    if (st.st_ino == f->seen.st_ino && st.st_size == f->seen.st_size &&
        st.st_mtim.tv_sec == f->seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == f->seen.st_mtim.tv_nsec)
        return;
    f->seen = st;
    struct ab_snapshot *s;
    char msg[512];
    int reason = check(f, f->path, 0, &s, msg, sizeof(msg));
    if (reason == NO_REASON)
        reason = hand_over(f, s, msg, sizeof(msg));
    if (reason != NO_REASON) {
        reject(f, (enum reject_reason)reason, f->path, msg);
        return;
    }
    AB_LOG_I(f->log, "snapshot_loaded", "component=%s file=%s version=%lld", f->component,
             f->path, (long long)atomic_load(&f->version));
}

/* ---------------------------------------------------------------- replication */

static uint64_t next_random(struct ab_follower *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

/* ms with +-10 % jitter, so that nodes started together spread their polls. */
static int64_t jitter(struct ab_follower *f, int64_t ms)
{
    double u = (double)(next_random(f) % 1000000) / 1e6;
    return (int64_t)((double)ms * (0.9 + 0.2 * u));
}

/* Exponential backoff after the k-th failure in a row: interval * 2^k, capped, jittered. */
static int64_t backoff_ms(struct ab_follower *f, int k)
{
    int64_t ms = f->poll_interval_ms;
    for (int i = 0; i < k && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    return jitter(f, ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms);
}

static void cache_path(const struct ab_follower *f, int64_t version, char *out, size_t len)
{
    snprintf(out, len, "%s/%lld.db", f->cache_dir, (long long)version);
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

/* The version a cache file name spells ("17.db"), or 0. */
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
static void cache_list(const struct ab_follower *f, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(f->cache_dir);
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

/* Deletes all but the newest CACHE_KEEP files (never the one in use). */
static void cache_prune(struct ab_follower *f)
{
    int64_t *vs;
    size_t count;
    cache_list(f, &vs, &count);
    int64_t in_use = atomic_load(&f->version);
    for (size_t i = CACHE_KEEP; i < count; i++) {
        if (vs[i] == in_use)
            continue;
        char path[4096];
        cache_path(f, vs[i], path, sizeof(path));
        unlink(path);
    }
    free(vs);
}

/* On start: the newest valid snapshot of the cache dir at once. Invalid ones are counted and
 * removed. */
static void cache_load(struct ab_follower *f)
{
    int64_t *vs;
    size_t count;
    cache_list(f, &vs, &count);
    for (size_t i = 0; i < count; i++) {
        char path[4096], msg[512];
        cache_path(f, vs[i], path, sizeof(path));
        struct ab_snapshot *s;
        int reason = check(f, path, vs[i], &s, msg, sizeof(msg));
        if (reason == NO_REASON)
            reason = hand_over(f, s, msg, sizeof(msg));
        if (reason != NO_REASON) {
            reject(f, (enum reject_reason)reason, path, msg);
            unlink(path);
            continue;
        }
        int64_t size;
        struct ab_errinfo ei;
        if (ab_snapshot_file_sha256(path, f->sha256, &size, &ei) != AB_OK)
            f->sha256[0] = '\0';
        AB_LOG_I(f->log, "snapshot_loaded", "component=%s file=%s version=%lld source=cache",
                 f->component, path, (long long)vs[i]);
        break;
    }
    free(vs);
}

static int same_candidate(const struct ab_replica_manifest *a, const struct ab_replica_manifest *b)
{
    return a->version == b->version && strcmp(a->sha256, b->sha256) == 0;
}

/* A candidate failed: count it, and retry it only after a growing backoff. */
static void candidate_failed(struct ab_follower *f, const struct ab_replica_manifest *m,
                             enum reject_reason reason, const char *source, const char *msg)
{
    if (!same_candidate(&f->bad, m)) {
        f->bad = *m;
        f->bad_attempts = 0;
    }
    f->bad_attempts++;
    f->bad_retry_ns = ab_clock_mono_ns(f->clock) + backoff_ms(f, f->bad_attempts) * 1000000;
    reject(f, reason, source, msg);
}

/* Downloads and verifies the version m announces, moves it into the cache dir, hands it over. */
static void fetch_candidate(struct ab_follower *f, const struct ab_replica_manifest *m)
{
    char url[2048], tmp[4096], final[4096], msg[512], sha[65];
    struct ab_errinfo ei;
    if (ab_replica_resolve_url(f->url, m->url, url, sizeof(url), &ei) != AB_OK) {
        candidate_failed(f, m, REJECT_MANIFEST, f->url, ei.message);
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s/.download-%ld.tmp", f->cache_dir, (long)getpid());
    int64_t size = 0;
    enum ab_replica_fetch_result fr =
        ab_replica_fetch_file(f->curl, url, tmp, m->size, sha, &size, msg, sizeof(msg));
    int reason = NO_REASON;
    if (fr == AB_REPLICA_FETCH_FAILED) {
        reason = REJECT_FETCH;
    } else if (fr == AB_REPLICA_FETCH_TOO_LARGE || size != m->size) {
        if (fr != AB_REPLICA_FETCH_TOO_LARGE)
            snprintf(msg, sizeof(msg), "got %lld bytes, the manifest announced %lld",
                     (long long)size, (long long)m->size);
        reason = REJECT_SIZE;
    } else if (strcmp(sha, m->sha256) != 0) {
        snprintf(msg, sizeof(msg), "SHA-256 %s, the manifest announced %s", sha, m->sha256);
        reason = REJECT_SHA256;
    }
    struct ab_snapshot *s = NULL;
    if (reason == NO_REASON)
        reason = check(f, tmp, m->version, &s, msg, sizeof(msg));
    cache_path(f, m->version, final, sizeof(final));
    if (reason == NO_REASON && (rename(tmp, final) != 0 || fsync_dir(f->cache_dir) != 0)) {
        snprintf(msg, sizeof(msg), "cannot move it into %s: %s", f->cache_dir, strerror(errno));
        reason = REJECT_IO;
        ab_snapshot_free(s);
    } else if (reason == NO_REASON && (reason = hand_over(f, s, msg, sizeof(msg))) != NO_REASON) {
        unlink(final); /* refused by the component: not kept for a restart either */
    }
    if (reason != NO_REASON) {
        unlink(tmp);
        candidate_failed(f, m, (enum reject_reason)reason, url, msg);
        return;
    }
    memcpy(f->sha256, sha, sizeof(f->sha256));
    memset(&f->bad, 0, sizeof(f->bad));
    AB_LOG_I(f->log, "snapshot_loaded", "component=%s url=%s version=%lld size=%lld",
             f->component, url, (long long)m->version, (long long)size);
    cache_prune(f);
}

/* One poll of the manifest; returns the wait before the next, ms. */
static int64_t poll_source(struct ab_follower *f)
{
    char body[AB_REPLICA_MANIFEST_MAX], etag[AB_REPLICA_ETAG_MAX] = "", msg[512];
    size_t len = 0;
    atomic_fetch_add(&f->polls, 1);
    enum ab_replica_fetch_result fr =
        ab_replica_fetch_manifest(f->curl, f->url, f->last.version > 0 ? f->etag : NULL, body,
                                  sizeof(body), &len, etag, msg, sizeof(msg));
    struct ab_replica_manifest m;
    if (fr == AB_REPLICA_FETCH_FAILED || fr == AB_REPLICA_FETCH_TOO_LARGE) {
        reject(f, fr == AB_REPLICA_FETCH_FAILED ? REJECT_FETCH : REJECT_MANIFEST, f->url, msg);
        return backoff_ms(f, ++f->fail_streak);
    }
    if (fr == AB_REPLICA_FETCH_NOT_MODIFIED && f->last.version > 0) {
        m = f->last;
    } else {
        struct ab_errinfo ei;
        if (ab_replica_manifest_parse(body, len, &m, &ei) != AB_OK) {
            snprintf(msg, sizeof(msg), "%s: %s", ei.field, ei.message);
            reject(f, REJECT_MANIFEST, f->url, msg);
            return backoff_ms(f, ++f->fail_streak);
        }
        f->last = m;
        memcpy(f->etag, etag, sizeof(f->etag));
    }
    f->fail_streak = 0;
    atomic_store(&f->last_ok_ms, ab_clock_now_ms(f->clock));
    int64_t current = atomic_load(&f->version);
    if (m.version <= current) {
        /* lower or equal versions are ignored; each odd manifest is counted once */
        int conflict = m.version == current && f->sha256[0] != '\0' &&
                       strcmp(m.sha256, f->sha256) != 0;
        if ((m.version < current || conflict) && !same_candidate(&f->bad, &m)) {
            f->bad = m;
            snprintf(msg, sizeof(msg),
                     conflict ? "version %lld announced with SHA-256 %s, in use with %s"
                              : "version %lld (SHA-256 %s) is older than the one in use%s",
                     (long long)m.version, m.sha256, conflict ? f->sha256 : "");
            reject(f, conflict ? REJECT_HASH_CONFLICT : REJECT_OLDER, f->url, msg);
        }
        return jitter(f, f->poll_interval_ms);
    }
    if (same_candidate(&f->bad, &m) && ab_clock_mono_ns(f->clock) < f->bad_retry_ns)
        return jitter(f, f->poll_interval_ms); /* refused before: retried after its backoff */
    if (m.size > f->max_bytes) {
        snprintf(msg, sizeof(msg), "version %lld announces %lld bytes, over the limit of %lld",
                 (long long)m.version, (long long)m.size, (long long)f->max_bytes);
        candidate_failed(f, &m, REJECT_SIZE, f->url, msg);
        return jitter(f, f->poll_interval_ms);
    }
    fetch_candidate(f, &m);
    return jitter(f, f->poll_interval_ms);
}

/* ---------------------------------------------------------------- the thread */

/* Waits up to ms, returning early on stop or a poke. */
static void wait_ms(struct ab_follower *f, int64_t ms)
{
    for (int64_t waited = 0; waited < ms && !atomic_load(&f->stop); waited += 20) {
        if (atomic_exchange(&f->poked, 0))
            return;
        struct timespec ts = {0, 20L * 1000000};
        nanosleep(&ts, NULL);
    }
}

static void *follower_main(void *arg)
{
    struct ab_follower *f = arg;
    int64_t next_ms = f->poll_interval_ms;
    if (f->url != NULL)
        next_ms = poll_source(f); /* the cache was loaded first; now ask the source */
    while (!atomic_load(&f->stop)) {
        wait_ms(f, next_ms);
        if (atomic_load(&f->stop))
            break;
        if (f->url != NULL) {
            next_ms = poll_source(f);
        } else {
            check_file(f);
            next_ms = f->poll_interval_ms;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

int ab_follower_source_given(const struct ab_follower_source *src)
{
    return (src->snapshot_file != NULL && src->snapshot_file[0] != '\0') ||
           (src->snapshot_url != NULL && src->snapshot_url[0] != '\0');
}

enum ab_err ab_follower_new(const struct ab_follower_config *cfg, struct ab_follower **out,
                            struct ab_errinfo *ei)
{
    *out = NULL;
    const struct ab_follower_source *src = &cfg->source;
    int file = src->snapshot_file != NULL && src->snapshot_file[0] != '\0';
    int url = src->snapshot_url != NULL && src->snapshot_url[0] != '\0';
    if (file == url)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "snapshot-url",
                       "give either a snapshot URL (with a cache dir) or a snapshot file");
    if (url) {
        if (src->cache_dir == NULL || src->cache_dir[0] == '\0')
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "cache-dir",
                           "is required with a snapshot URL");
        if (strncmp(src->snapshot_url, "http://", 7) != 0 &&
            strncmp(src->snapshot_url, "https://", 8) != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "snapshot-url", "must be an http(s) URL");
        if (mkdir(src->cache_dir, 0750) != 0 && errno != EEXIST)
            return ab_fail(ei, AB_ERR_IO, "cache-dir", "cannot create %s: %s", src->cache_dir,
                           strerror(errno));
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return ab_fail(ei, AB_ERR_INTERNAL, NULL, "libcurl cannot initialize");
    }
    struct ab_follower *f = ab_mem_calloc(1, sizeof(*f));
    f->path = file ? ab_mem_strdup(src->snapshot_file) : NULL;
    f->url = url ? ab_mem_strdup(src->snapshot_url) : NULL;
    f->cache_dir = url ? ab_mem_strdup(src->cache_dir) : NULL;
    f->prefix = ab_mem_strdup(cfg->metrics_prefix != NULL ? cfg->metrics_prefix
                                                          : "abacus_snapshot");
    f->component = ab_mem_strdup(cfg->component != NULL ? cfg->component : "node");
    f->poll_interval_ms = src->poll_interval_ms > 0 ? src->poll_interval_ms : 5000;
    f->max_bytes = src->max_snapshot_bytes > 0 ? src->max_snapshot_bytes : (int64_t)1 << 30;
    f->ready = cfg->ready;
    f->data = cfg->data;
    f->log = cfg->log;
    f->clock = cfg->clock != NULL ? cfg->clock : &ab_clock_system;
    if (url) {
        f->curl = curl_easy_init();
        f->rng = src->jitter_seed != 0 ? src->jitter_seed
                                       : (uint64_t)ab_clock_mono_ns(f->clock) ^
                                             ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
        if (f->rng == 0)
            f->rng = 1;
    }
    *out = f;
    return AB_OK;
}

enum ab_err ab_follower_start(struct ab_follower *f, struct ab_errinfo *ei)
{
    if (f->url != NULL)
        cache_load(f); /* the source is asked by the thread, after this */
    else
        check_file(f);
    if (pthread_create(&f->thread, NULL, follower_main, f) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the snapshot follower");
    f->started = 1;
    return AB_OK;
}

void ab_follower_poke(struct ab_follower *f)
{
    atomic_store(&f->poked, 1);
}

void ab_follower_stop(struct ab_follower *f)
{
    if (f == NULL || !f->started)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    f->started = 0;
}

void ab_follower_free(struct ab_follower *f)
{
    if (f == NULL)
        return;
    ab_follower_stop(f);
    if (f->curl != NULL) {
        curl_easy_cleanup(f->curl);
        curl_global_cleanup();
    }
    free(f->path);
    free(f->url);
    free(f->cache_dir);
    free(f->prefix);
    free(f->component);
    free(f);
}

int64_t ab_follower_version(const struct ab_follower *f)
{
    return atomic_load(&((struct ab_follower *)f)->version);
}

const char *ab_follower_source(const struct ab_follower *f)
{
    return f->url != NULL ? f->url : f->path;
}

void ab_follower_metrics(const struct ab_follower *f_, FILE *out)
{
    struct ab_follower *f = (struct ab_follower *)f_; /* atomics are read, never written */
    const char *p = f->prefix;
    int64_t version = atomic_load(&f->version);
    int64_t now = ab_clock_now_ms(f->clock);
    fprintf(out,
            "# HELP %s_version Version of the snapshot in use (0: none).\n"
            "# TYPE %s_version gauge\n%s_version %lld\n",
            p, p, p, (long long)version);
    if (version > 0)
        fprintf(out,
                "# HELP %s_age_seconds Time since the snapshot in use was written.\n"
                "# TYPE %s_age_seconds gauge\n%s_age_seconds %.3f\n",
                p, p, p, (double)(now - atomic_load(&f->created_at)) / 1000.0);
    fprintf(out,
            "# HELP %s_loads_total Snapshots loaded and swapped in.\n"
            "# TYPE %s_loads_total counter\n%s_loads_total %llu\n",
            p, p, p, (unsigned long long)atomic_load(&f->loads));
    if (f->url != NULL) {
        int64_t ok = atomic_load(&f->last_ok_ms);
        fprintf(out,
                "# HELP %s_polls_total Manifest requests made to the source.\n"
                "# TYPE %s_polls_total counter\n%s_polls_total %llu\n"
                "# HELP %s_loaded_poll The poll that brought the snapshot in use (0: the cache "
                "dir).\n# TYPE %s_loaded_poll gauge\n%s_loaded_poll %llu\n",
                p, p, p, (unsigned long long)atomic_load(&f->polls), p, p, p,
                (unsigned long long)atomic_load(&f->loaded_poll));
        if (ok > 0)
            fprintf(out,
                    "# HELP %s_source_age_seconds Time since the source last answered a poll.\n"
                    "# TYPE %s_source_age_seconds gauge\n%s_source_age_seconds %.3f\n",
                    p, p, p, (double)(now - ok) / 1000.0);
    }
    fprintf(out,
            "# HELP %s_rejected_total Snapshots refused (the one in use is kept), by reason.\n"
            "# TYPE %s_rejected_total counter\n",
            p, p);
    for (int r = 0; r < REJECT_COUNT; r++)
        fprintf(out, "%s_rejected_total{reason=\"%s\"} %llu\n", p, REJECT_NAMES[r],
                (unsigned long long)atomic_load(&f->rejected[r]));
}
