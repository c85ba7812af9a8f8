/*
 * The web component's lifecycle (see web.h): data directory and control database set-up, the
 * first admin key, one SQLite connection per HTTP worker thread, and the publisher thread that
 * publishes a snapshot once changes have been quiet for the debounce time.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "abacus/mem.h"
#include "abacus/migrate.h"
#include "web_int.h"

static int make_dir(const char *path)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
    return -1;
}

enum ab_err web_db_open(struct web *w, struct ab_db **out, struct ab_errinfo *ei)
{
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL, .busy_timeout_ms = 10000};
    return ab_db_open(w->db_path, &o, out, ei);
}

struct ab_db *web_db(struct web *w, int thread, struct ab_errinfo *ei)
{
    if (thread < 0 || thread >= w->ndbs) {
        ab_fail(ei, AB_ERR_INTERNAL, NULL, "no connection slot for thread %d", thread);
        return NULL;
    }
    if (w->dbs[thread] == NULL && web_db_open(w, &w->dbs[thread], ei) != AB_OK)
        return NULL;
    return w->dbs[thread];
}

void web_key_generate(const char *kind, char key[80], char prefix[16], char hash[65])
{
    unsigned char raw[32];
    char hex[65];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    const char *tag = strcmp(kind, "admin") == 0    ? "adm"
                      : strcmp(kind, "client") == 0 ? "sdk"
                                                    : "ing";
    snprintf(key, 80, "%s_%s", tag, hex);
    snprintf(prefix, 16, "%s_%.8s", tag, hex);
    ab_snapshot_key_hash(key, hash);
}

/* Writes key to DATA_DIR/name, mode 0600, atomically. */
static enum ab_err write_key_file(struct web *w, const char *name, const char *key,
                                  struct ab_errinfo *ei)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", w->data_dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ab_fail(ei, AB_ERR_IO, NULL, "cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(key);
    int ok = fchmod(fd, 0600) == 0 && write(fd, key, len) == (ssize_t)len &&
             write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int err = errno;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        err = ok ? errno : err;
        unlink(tmp);
        return ab_fail(ei, AB_ERR_IO, NULL, "cannot write %s: %s", path, strerror(err));
    }
    return AB_OK;
}

/* Creates the first admin key when there is none: printed once, kept in DATA_DIR/admin.key. */
static enum ab_err bootstrap_admin_key(struct web *w, struct ab_db *db, struct ab_errinfo *ei)
{
    int64_t n = 0;
    enum ab_err rc = web_store_key_count(db, "admin", &n, ei);
    if (rc != AB_OK || n > 0)
        return rc;
    char key[80], prefix[16], hash[65];
    web_key_generate("admin", key, prefix, hash);
    struct web_actor system = {"system"};
    json_t *row = NULL;
    if ((rc = web_store_key_create(db, "admin", "first admin key", prefix, hash, &system,
                                   ab_clock_now_ms(w->cfg.clock), &row, ei)) != AB_OK)
        return rc;
    json_decref(row);
    if ((rc = write_key_file(w, "admin.key", key, ei)) != AB_OK)
        return rc;
    if (w->cfg.announce != NULL) {
        fprintf(w->cfg.announce,
                "abacus: created an admin API key (shown once; also in %s/admin.key):\n  %s\n"
                "  use it as: Authorization: Bearer %s\n",
                w->data_dir, key, key);
        fflush(w->cfg.announce);
    }
    AB_LOG_I(w->cfg.log, "admin_key_created", "prefix=%s file=%s/admin.key", prefix, w->data_dir);
    return AB_OK;
}

/*
 * Creates the first user when there is none: admin@localhost with a random password, printed once
 * and kept in DATA_DIR/admin.password (mode 0600) for the browser login.
 */
static enum ab_err bootstrap_admin_user(struct web *w, struct ab_db *db, struct ab_errinfo *ei)
{
    int64_t n = 0;
    enum ab_err rc = web_store_user_count(db, &n, ei);
    if (rc != AB_OK || n > 0)
        return rc;
    unsigned char raw[18];
    char password[32], hash[WEB_HASH_MAX];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(password, sizeof(password), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    json_t *user = json_pack("{s:s, s:s, s:s}", "email", "admin@localhost", "password", password,
                             "role", "admin");
    json_t *row = NULL;
    struct web_actor system = {"system"};
    if ((rc = web_password_hash(password, hash, ei)) == AB_OK)
        rc = web_store_user_create(db, user, hash, &system, ab_clock_now_ms(w->cfg.clock), &row,
                                   ei);
    json_decref(user);
    json_decref(row);
    if (rc == AB_OK)
        rc = write_key_file(w, "admin.password", password, ei);
    if (rc != AB_OK)
        return rc;
    if (w->cfg.announce != NULL) {
        fprintf(w->cfg.announce,
                "abacus: created the first user (shown once; the password is also in "
                "%s/admin.password):\n  open the URL below in a browser and log in as "
                "admin@localhost with password %s\n",
                w->data_dir, password);
        fflush(w->cfg.announce);
    }
    AB_LOG_I(w->cfg.log, "admin_user_created", "email=admin@localhost file=%s/admin.password",
             w->data_dir);
    return AB_OK;
}

enum ab_err web_new(const struct web_config *cfg, struct web **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0')
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "data-dir", "is required");
    if (sodium_init() < 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "libsodium cannot initialize");
    struct web *w = ab_mem_calloc(1, sizeof(*w));
    w->cfg = *cfg;
    if (w->cfg.keep_snapshots <= 0)
        w->cfg.keep_snapshots = 10;
    if (w->cfg.debounce_ms <= 0)
        w->cfg.debounce_ms = 300;
    if (w->cfg.clock == NULL)
        w->cfg.clock = &ab_clock_system;
    if (w->cfg.session_idle_s <= 0)
        w->cfg.session_idle_s = 1800;
    if (w->cfg.session_max_s <= 0)
        w->cfg.session_max_s = 43200;
    if (w->cfg.login_limit_email <= 0)
        w->cfg.login_limit_email = 5;
    if (w->cfg.login_limit_ip <= 0)
        w->cfg.login_limit_ip = 20;
    w->throttle = ab_mem_calloc(1, sizeof(*w->throttle));
    web_throttle_init(w->throttle, (int64_t)15 * 60 * 1000);
    w->data_dir = ab_mem_strdup(cfg->data_dir);
    size_t n = strlen(w->data_dir) + 32;
    w->db_path = ab_mem_calloc(1, n);
    snprintf(w->db_path, n, "%s/abacus.db", w->data_dir);
    w->snap_dir = ab_mem_calloc(1, n);
    snprintf(w->snap_dir, n, "%s/snapshots", w->data_dir);
    pthread_mutex_init(&w->publish_lock, NULL);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    enum ab_err rc = AB_OK;
    struct ab_db *db = NULL;
    if (make_dir(w->data_dir) != 0 || make_dir(w->snap_dir) != 0) {
        rc = ab_fail(ei, AB_ERR_IO, "data-dir", "cannot create %s: %s", w->snap_dir,
                     strerror(errno));
        goto Exit;
    }
    if ((rc = web_db_open(w, &db, ei)) != AB_OK ||
        (rc = ab_migrate(db, ab_migrations, ab_migrations_count, NULL, NULL, ei)) != AB_OK ||
        (rc = bootstrap_admin_key(w, db, ei)) != AB_OK ||
        (rc = bootstrap_admin_user(w, db, ei)) != AB_OK ||
        (rc = web_password_hash("no user has this password", w->dummy_hash, ei)) != AB_OK)
        goto Exit;
    *out = w;
    w = NULL;
Exit:
    ab_db_close(db);
    web_free(w);
    return rc;
}

/* ---------------------------------------------------------------- publisher thread */

void web_changed(struct web *w)
{
    int64_t now = ab_clock_mono_ns(w->cfg.clock);
    pthread_mutex_lock(&w->lock);
    if (!w->dirty)
        w->first_change_ns = now;
    w->dirty = 1;
    w->last_change_ns = now;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void *publisher_main(void *arg)
{
    struct web *w = arg;
    struct ab_errinfo ei;
    struct ab_db *db = NULL;
    struct web_actor system = {"system"};
    int64_t debounce = (int64_t)w->cfg.debounce_ms * 1000000;
    int failures = 0;
    pthread_mutex_lock(&w->lock);
    while (1) {
        int64_t now = ab_clock_mono_ns(w->cfg.clock);
        int due = w->dirty && now >= w->retry_ns &&
                  (now - w->last_change_ns >= debounce ||
                   now - w->first_change_ns >= 10 * debounce || w->stop);
        if (!due) {
            if (w->stop)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20000000; /* re-check every 20 ms while a change waits */
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (w->dirty)
                pthread_cond_timedwait(&w->cond, &w->lock, &ts);
            else
                pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        w->dirty = 0;
        pthread_mutex_unlock(&w->lock);
        struct web_snapshot_row row = {0};
        if (db == NULL && web_db_open(w, &db, &ei) != AB_OK)
            AB_LOG_E(w->cfg.log, "publish_failed", "message=\"%s\"", ei.message);
        int ok = db != NULL && web_publish(w, db, &system, &row, &ei) == AB_OK;
        pthread_mutex_lock(&w->lock);
        if (ok) {
            failures = 0;
        } else if (!w->stop) {
            /* retried after 1 s, 2 s, 4 s... (at most 64 s); counted in the metrics */
            int64_t wait = (int64_t)1000000000 << (failures < 6 ? failures : 6);
            failures++;
            w->retry_ns = ab_clock_mono_ns(w->cfg.clock) + wait;
            if (!w->dirty) {
                w->dirty = 1;
                w->first_change_ns = w->last_change_ns = ab_clock_mono_ns(w->cfg.clock);
            }
        }
    }
    pthread_mutex_unlock(&w->lock);
    ab_db_close(db);
    return NULL;
}

enum ab_err web_start(struct web *w, struct ab_errinfo *ei)
{
    struct ab_db *db = NULL;
    enum ab_err rc = web_db_open(w, &db, ei);
    struct web_snapshot_row row = {0};
    int found = 0;
    if (rc == AB_OK)
        rc = web_snapshot_latest(db, &row, &found, ei);
    if (rc == AB_OK && found) {
        atomic_store(&w->published_version, row.version);
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", w->data_dir, row.path);
        struct stat st;
        if (stat(full, &st) != 0)
            found = 0; /* the newest file is gone: publish it again under a new version */
        else
            web_link_current(w, &row);
    }
    if (rc == AB_OK && !found) {
        struct web_actor system = {"system"};
        rc = web_publish(w, db, &system, &row, ei);
    }
    ab_db_close(db);
    if (rc != AB_OK)
        return rc;
    if (pthread_create(&w->publisher, NULL, publisher_main, w) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the publisher thread");
    w->publisher_started = 1;
    return AB_OK;
}

void web_stop(struct web *w)
{
    if (w == NULL || !w->publisher_started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->publisher, NULL);
    w->publisher_started = 0;
}

void web_free(struct web *w)
{
    if (w == NULL)
        return;
    web_stop(w);
    for (int i = 0; i < w->ndbs; i++)
        ab_db_close(w->dbs[i]);
    free(w->dbs);
    pthread_mutex_destroy(&w->publish_lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    web_throttle_dispose(w->throttle);
    free(w->throttle);
    free(w->data_dir);
    free(w->db_path);
    free(w->snap_dir);
    free(w);
}
