/*
 * The snapshots' SQL and files (docs/design.md, "Snapshots and replication"): a consistent copy
 * of what assign nodes and collectors need, read in one BEGIN IMMEDIATE transaction of the control
 * database (so the version number and the contents agree, also between processes sharing the
 * data dir), written with lib/snapshot's atomic writer to DATA_DIR/snapshots/<version>.db,
 * hashed, and recorded in the snapshots table. Files beyond the newest keep_snapshots are
 * deleted; their rows stay as history.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "abacus/mem.h"
#include "store.h"

/* ---------------------------------------------------------------- the consistent copy */

static int cmp_key(const void *key, const void *elem)
{
    return strcmp(key, ((const struct ab_snapshot_experiment *)elem)->key);
}

static enum ab_err read_experiments(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT e.key, e.status, e.hash_attribute, e.fallback_attribute, e.hash_version, e.seed, "
        "e.coverage, e.condition_json, l.key, e.layer_start, e.layer_end, e.phase, e.version "
        "FROM experiments e LEFT JOIN layers l ON l.id = e.layer_id "
        "WHERE e.status IN ('running', 'paused') ORDER BY e.key",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    size_t cap = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (s->nexperiments == cap) {
            cap = cap == 0 ? 64 : cap * 2;
            s->experiments = ab_mem_realloc(s->experiments, cap * sizeof(*s->experiments));
        }
        struct ab_snapshot_experiment *e = &s->experiments[s->nexperiments++];
        memset(e, 0, sizeof(*e));
        e->key = ab_mem_strdup(web_col(st, 0));
        e->running = strcmp(web_col(st, 1), "running") == 0;
        e->hash_attribute = ab_mem_strdup(web_col(st, 2));
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            e->fallback_attribute = ab_mem_strdup(web_col(st, 3));
        e->hash_version = sqlite3_column_int(st, 4);
        e->seed = ab_mem_strdup(web_col(st, 5));
        e->coverage = sqlite3_column_double(st, 6);
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            e->condition = json_loads(web_col(st, 7), 0, NULL);
        if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
            e->layer = ab_mem_strdup(web_col(st, 8));
            e->layer_start = sqlite3_column_double(st, 9);
            e->layer_end = sqlite3_column_double(st, 10);
        }
        e->phase = sqlite3_column_int64(st, 11);
        e->version = sqlite3_column_int64(st, 12);
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "cannot read experiments", ei);
}

static enum ab_err read_variants(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT e.key, v.key, v.weight, v.payload_json FROM variants v JOIN experiments e ON "
        "e.id = v.experiment_id WHERE e.status IN ('running', 'paused') ORDER BY e.key, "
        "v.position",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    struct ab_snapshot_experiment *e = NULL;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (e == NULL || strcmp(e->key, web_col(st, 0)) != 0)
            e = bsearch(web_col(st, 0), s->experiments, s->nexperiments, sizeof(*e), cmp_key);
        if (e == NULL)
            continue; /* cannot happen inside one transaction */
        e->variants = ab_mem_realloc(e->variants, (e->nvariants + 1) * sizeof(*e->variants));
        struct ab_snapshot_variant *v = &e->variants[e->nvariants++];
        v->key = ab_mem_strdup(web_col(st, 1));
        v->weight = sqlite3_column_double(st, 2);
        v->payload = json_loads(web_col(st, 3), JSON_DECODE_ANY, NULL);
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return ab_db_fail(db, src, "cannot read variants", ei);
    if ((rc = ab_db_prepare(db,
                            "SELECT e.key, o.unit, o.variant_key FROM overrides o JOIN "
                            "experiments e ON e.id = o.experiment_id WHERE e.status IN "
                            "('running', 'paused') ORDER BY e.key, o.unit",
                            &st, ei)) != AB_OK)
        return rc;
    e = NULL;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (e == NULL || strcmp(e->key, web_col(st, 0)) != 0)
            e = bsearch(web_col(st, 0), s->experiments, s->nexperiments, sizeof(*e), cmp_key);
        if (e == NULL)
            continue;
        e->overrides = ab_mem_realloc(e->overrides, (e->noverrides + 1) * sizeof(*e->overrides));
        e->overrides[e->noverrides].unit = ab_mem_strdup(web_col(st, 1));
        e->overrides[e->noverrides++].variant = ab_mem_strdup(web_col(st, 2));
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "cannot read overrides", ei);
}

static enum ab_err read_keys(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT kind, key_hash FROM api_keys WHERE kind IN ('client', "
                                   "'ingest') AND revoked_at IS NULL ORDER BY key_hash",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        int client = strcmp(web_col(st, 0), "client") == 0;
        char ***list = client ? &s->client_key_hashes : &s->ingest_key_hashes;
        size_t *n = client ? &s->nclient_keys : &s->ningest_keys;
        *list = ab_mem_realloc(*list, (*n + 1) * sizeof(**list));
        (*list)[(*n)++] = ab_mem_strdup(web_col(st, 1));
    }
    sqlite3_reset(st);
    return src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "cannot read keys", ei);
}

/* ---------------------------------------------------------------- publishing */

struct publish_job {
    struct web *w;
    const struct web_actor *who;
    struct web_snapshot_row *row;
};

static enum ab_err record(struct ab_db *db, const struct publish_job *j, size_t nexp,
                          struct ab_errinfo *ei)
{
    const struct web_snapshot_row *r = j->row;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO snapshots (version, sha256, size, path, "
                                   "created_at, created_by, summary_json) VALUES (?1, ?2, ?3, "
                                   "?4, ?5, ?6, ?7)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *summary = json_pack("{s:I}", "experiments", (json_int_t)nexp);
    char *sj = json_dumps(summary, JSON_COMPACT);
    json_decref(summary);
    sqlite3_bind_int64(st, 1, r->version);
    sqlite3_bind_text(st, 2, r->sha256, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, r->size);
    sqlite3_bind_text(st, 4, r->path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, r->created_at);
    sqlite3_bind_text(st, 6, j->who->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 7, sj, -1, SQLITE_TRANSIENT);
    free(sj);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        return rc;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO audit_log (at, actor, action, entity_type, entity_key, "
                            "after_json) VALUES (?1, ?2, 'snapshot.publish', 'snapshot', ?3, ?4)",
                            &st, ei)) != AB_OK)
        return rc;
    char vtext[24];
    snprintf(vtext, sizeof(vtext), "%lld", (long long)r->version);
    json_t *after =
        json_pack("{s:I, s:s, s:I, s:I}", "version", (json_int_t)r->version, "sha256", r->sha256,
                  "size", (json_int_t)r->size, "experiments", (json_int_t)nexp);
    char *aj = json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(after);
    sqlite3_bind_int64(st, 1, r->created_at);
    sqlite3_bind_text(st, 2, j->who->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, vtext, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, aj, -1, SQLITE_TRANSIENT);
    free(aj);
    return ab_db_step_done(db, st, ei);
}

static enum ab_err publish_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct publish_job *j = arg;
    struct web *w = j->w;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT coalesce(max(version), 0) FROM snapshots", &st, ei);
    if (rc != AB_OK)
        return rc;
    int src = sqlite3_step(st);
    int64_t last = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return ab_db_fail(db, src, "cannot read the last snapshot version", ei);
    struct ab_snapshot *s = ab_mem_calloc(1, sizeof(*s));
    s->version = last + 1;
    s->created_at = ab_clock_now_ms(w->cfg.clock);
    if ((rc = read_experiments(db, s, ei)) != AB_OK || (rc = read_variants(db, s, ei)) != AB_OK ||
        (rc = read_keys(db, s, ei)) != AB_OK)
        goto Exit;
    struct web_snapshot_row *r = j->row;
    memset(r, 0, sizeof(*r));
    r->version = s->version;
    r->created_at = s->created_at;
    snprintf(r->path, sizeof(r->path), "snapshots/%lld.db", (long long)s->version);
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", w->data_dir, r->path);
    if ((rc = ab_snapshot_write(s, full, ei)) != AB_OK ||
        (rc = ab_snapshot_file_sha256(full, r->sha256, &r->size, ei)) != AB_OK)
        goto Exit;
    rc = record(db, j, s->nexperiments, ei);
Exit:
    ab_snapshot_free(s);
    return rc;
}

/* Deletes the files of all but the newest keep snapshots. */
static void prune(struct web *w, struct ab_db *db)
{
    sqlite3_stmt *st;
    if (ab_db_prepare(db, "SELECT path FROM snapshots ORDER BY version DESC LIMIT -1 OFFSET ?1",
                      &st, NULL) != AB_OK)
        return;
    sqlite3_bind_int(st, 1, w->cfg.keep_snapshots);
    while (sqlite3_step(st) == SQLITE_ROW) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", w->data_dir, web_col(st, 0));
        if (unlink(full) == 0)
            AB_LOG_D(w->cfg.log, "snapshot_pruned", "path=%s", full);
    }
    sqlite3_reset(st);
}

/* DATA_DIR/snapshots/current.db: a hard link to the newest file, replaced atomically, for a
 * node on the same machine (`abacus up`, `abacus assign --snapshot-file`). */
static void link_current(struct web *w, const struct web_snapshot_row *row)
{
    char full[4096], tmp[4400], cur[4200];
    snprintf(full, sizeof(full), "%s/%s", w->data_dir, row->path);
    snprintf(cur, sizeof(cur), "%.4000s/current.db", w->snap_dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", cur, (long)getpid());
    unlink(tmp);
    if (link(full, tmp) != 0 || rename(tmp, cur) != 0) {
        AB_LOG_W(w->cfg.log, "current_link_failed", "path=%s error=\"%s\"", cur, strerror(errno));
        unlink(tmp);
    }
}

void web_link_current(struct web *w, const struct web_snapshot_row *row)
{
    link_current(w, row);
}

enum ab_err web_publish(struct web *w, struct ab_db *db, const struct web_actor *who,
                        struct web_snapshot_row *row, struct ab_errinfo *ei)
{
    struct publish_job j = {w, who, row};
    pthread_mutex_lock(&w->publish_lock);
    int64_t t0 = ab_clock_mono_ns(w->cfg.clock);
    enum ab_err rc = ab_db_transaction(db, publish_tx, &j, ei);
    if (rc == AB_OK)
        prune(w, db);
    pthread_mutex_unlock(&w->publish_lock);
    if (rc != AB_OK) {
        atomic_fetch_add(&w->publish_failures, 1);
        AB_LOG_E(w->cfg.log, "publish_failed", "error=%s message=\"%s\"", ab_err_code(rc),
                 ei != NULL ? ei->message : "");
        return rc;
    }
    link_current(w, row);
    atomic_fetch_add(&w->publishes, 1);
    atomic_store(&w->published_version, row->version);
    AB_LOG_I(w->cfg.log, "snapshot_published", "version=%lld size=%lld sha256=%s ms=%.1f by=%s",
             (long long)row->version, (long long)row->size, row->sha256,
             (double)(ab_clock_mono_ns(w->cfg.clock) - t0) / 1e6, who->name);
    if (w->cfg.on_publish != NULL) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", w->data_dir, row->path);
        w->cfg.on_publish(w->cfg.on_publish_data, full, row->version);
    }
    return AB_OK;
}

/* ---------------------------------------------------------------- reading what was published */

static enum ab_err read_row(struct ab_db *db, sqlite3_stmt *st, struct web_snapshot_row *row,
                            int *found, struct ab_errinfo *ei)
{
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (*found) {
        row->version = sqlite3_column_int64(st, 0);
        snprintf(row->sha256, sizeof(row->sha256), "%s", web_col(st, 1));
        row->size = sqlite3_column_int64(st, 2);
        snprintf(row->path, sizeof(row->path), "%s", web_col(st, 3));
        row->created_at = sqlite3_column_int64(st, 4);
    }
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE
               ? AB_OK
               : ab_db_fail(db, src, "cannot read snapshots", ei);
}

enum ab_err web_snapshot_latest(struct ab_db *db, struct web_snapshot_row *row, int *found,
                                struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT version, sha256, size, path, created_at FROM "
                                   "snapshots ORDER BY version DESC LIMIT 1",
                                   &st, ei);
    return rc != AB_OK ? rc : read_row(db, st, row, found, ei);
}

enum ab_err web_snapshot_get(struct ab_db *db, int64_t version, struct web_snapshot_row *row,
                             int *found, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT version, sha256, size, path, created_at FROM "
                                   "snapshots WHERE version = ?1",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, version);
    return read_row(db, st, row, found, ei);
}

enum ab_err web_snapshot_list(struct web *w, struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT version, sha256, size, path, created_at, created_by, "
                                   "summary_json FROM snapshots ORDER BY version DESC LIMIT 100",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *list = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        char full[4096], url[64];
        snprintf(full, sizeof(full), "%s/%s", w->data_dir, web_col(st, 3));
        snprintf(url, sizeof(url), "/v1/snapshots/%lld.db", (long long)sqlite3_column_int64(st, 0));
        struct stat sb;
        json_t *summary = json_loads(web_col(st, 6), 0, NULL);
        json_array_append_new(
            list, json_pack("{s:I, s:s, s:I, s:s, s:I, s:s, s:b, s:o}", "version",
                            (json_int_t)sqlite3_column_int64(st, 0), "sha256", web_col(st, 1),
                            "size", (json_int_t)sqlite3_column_int64(st, 2), "url", url,
                            "created_at", (json_int_t)sqlite3_column_int64(st, 4), "created_by",
                            web_col(st, 5), "available", stat(full, &sb) == 0, "summary",
                            summary != NULL ? summary : json_object()));
    }
    sqlite3_reset(st);
    *out = json_pack("{s:o, s:i}", "snapshots", list, "keep", w->cfg.keep_snapshots);
    return AB_OK;
}

enum ab_err web_unpublished_since(struct ab_db *db, int64_t as_of_ms, int64_t *since_ms,
                                  struct ab_errinfo *ei)
{
    *since_ms = 0;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT MIN(a.at) FROM audit_log a"
        " WHERE a.at < ?1 AND a.entity_type IN ('experiment', 'layer', 'api_key')"
        "   AND COALESCE(json_extract(COALESCE(a.after_json, a.before_json), '$.kind'), '')"
        "       <> 'admin'"
        "   AND a.at > COALESCE((SELECT MAX(created_at) FROM snapshots WHERE created_at < ?1),"
        "                       -1)",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, as_of_ms);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *since_ms = sqlite3_column_int64(st, 0); /* NULL reads as 0 */
    sqlite3_reset(st);
    return s == SQLITE_ROW ? AB_OK : ab_db_fail(db, s, "reading unpublished changes", ei);
}
