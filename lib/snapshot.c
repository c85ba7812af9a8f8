/*
 * Snapshot file reader and writer (see abacus/snapshot.h). The reader trusts nothing in the file:
 * it runs quick_check, checks the format version, reads every row with its type checked, and
 * validates every experiment before returning anything. All SQL of the snapshot format is here.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "abacus/db.h"
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "abacus/utf8.h"

/* ---------------------------------------------------------------- validation */

static int valid_key(const char *k)
{
    size_t n = k != NULL ? strlen(k) : 0;
    return n > 0 && n <= AB_SNAPSHOT_KEY_MAX && ab_utf8_valid(k, n);
}

enum ab_err ab_snapshot_validate_experiment(const struct ab_snapshot_experiment *e,
                                            struct ab_errinfo *ei)
{
    if (!valid_key(e->key))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key",
                       "must be 1 to %d bytes of UTF-8", AB_SNAPSHOT_KEY_MAX);
    if (!valid_key(e->hash_attribute))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "hash_attribute", "must be a non-empty name");
    if (e->fallback_attribute != NULL && !valid_key(e->fallback_attribute))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "fallback_attribute", "must be a name or null");
    if (e->hash_version != 1 && e->hash_version != 2)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "hash_version", "must be 1 or 2, not %d",
                       e->hash_version);
    if (e->seed == NULL || e->seed[0] == '\0' || !ab_utf8_valid(e->seed, strlen(e->seed)))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "seed", "must be non-empty UTF-8");
    if (!(e->coverage >= 0 && e->coverage <= 1))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "coverage", "must be within [0, 1]");
    if (e->condition != NULL && !json_is_object(e->condition))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "condition", "must be a JSON object or null");
    if (e->layer != NULL &&
        (!valid_key(e->layer) || !(e->layer_start >= 0 && e->layer_start < e->layer_end &&
                                   e->layer_end <= 1)))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "layer",
                       "needs a key and a range 0 <= start < end <= 1");
    if (e->nvariants < 2)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants", "needs at least 2 variants");
    double sum = 0;
    for (size_t i = 0; i < e->nvariants; i++) {
        char field[64];
        const struct ab_snapshot_variant *v = &e->variants[i];
        if (!valid_key(v->key)) {
            snprintf(field, sizeof(field), "variants[%zu].key", i);
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be 1 to %d bytes of UTF-8",
                           AB_SNAPSHOT_KEY_MAX);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->variants[j].key, v->key) == 0) {
                snprintf(field, sizeof(field), "variants[%zu].key", i);
                return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "duplicate variant key %s",
                               v->key);
            }
        if (!(v->weight >= 0 && v->weight <= 1)) {
            snprintf(field, sizeof(field), "variants[%zu].weight", i);
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be within [0, 1]");
        }
        if (v->payload == NULL) {
            snprintf(field, sizeof(field), "variants[%zu].payload", i);
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be JSON");
        }
        sum += v->weight;
    }
    if (fabs(sum - 1) > 1e-6)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants",
                       "weights sum to %.9g, not 1", sum);
    for (size_t i = 0; i < e->noverrides; i++) {
        const struct ab_snapshot_override *o = &e->overrides[i];
        size_t j = 0;
        while (j < e->nvariants && strcmp(e->variants[j].key, o->variant) != 0)
            j++;
        if (j == e->nvariants || o->unit == NULL || o->unit[0] == '\0') {
            char field[64];
            snprintf(field, sizeof(field), "overrides[%zu]", i);
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field,
                           "must name a unit and one of the experiment's variants");
        }
    }
    return AB_OK;
}

/* ---------------------------------------------------------------- reading */

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? ab_mem_strdup((const char *)t) : NULL;
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (t == NULL)
        return NULL;
    return json_loads(t, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

static int cmp_experiment(const void *key, const void *elem)
{
    const char *k = ((const struct ab_snapshot_experiment *)elem)->key;
    return strcmp(key, k != NULL ? k : "");
}

/* experiments are read ORDER BY key (SQLite's BINARY collation is strcmp order) */
static struct ab_snapshot_experiment *find_experiment(struct ab_snapshot *s, const char *key)
{
    return bsearch(key, s->experiments, s->nexperiments, sizeof(*s->experiments),
                   cmp_experiment);
}

static enum ab_err read_experiments(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT key, status, hash_attribute, fallback_attribute, hash_version, seed, coverage, "
        "condition_json, layer_key, layer_start, layer_end, phase, version FROM experiments "
        "ORDER BY key",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        s->experiments = ab_mem_realloc(s->experiments,
                                        (s->nexperiments + 1) * sizeof(*s->experiments));
        struct ab_snapshot_experiment *e = &s->experiments[s->nexperiments++];
        memset(e, 0, sizeof(*e));
        e->key = col_text(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        e->running = status != NULL && strcmp(status, "running") == 0;
        e->hash_attribute = col_text(st, 2);
        e->fallback_attribute = col_text(st, 3);
        e->hash_version = sqlite3_column_int(st, 4);
        e->seed = col_text(st, 5);
        e->coverage = sqlite3_column_double(st, 6);
        if (sqlite3_column_type(st, 7) != SQLITE_NULL && (e->condition = col_json(st, 7)) == NULL)
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "condition", "is not valid JSON");
        e->layer = col_text(st, 8);
        e->layer_start = sqlite3_column_double(st, 9);
        e->layer_end = sqlite3_column_double(st, 10);
        e->phase = sqlite3_column_int64(st, 11);
        e->version = sqlite3_column_int64(st, 12);
        if (rc != AB_OK)
            break;
    }
    if (rc == AB_OK && src != SQLITE_DONE)
        rc = ab_db_fail(db, src, "cannot read experiments", ei);
    sqlite3_reset(st);
    return rc;
}

/* The experiment a variants/overrides row (experiment_key in column 0) belongs to, or NULL and
 * an error naming the table. */
static struct ab_snapshot_experiment *row_experiment(sqlite3_stmt *st, struct ab_snapshot *s,
                                                     const char *table, struct ab_errinfo *ei)
{
    const char *ekey = (const char *)sqlite3_column_text(st, 0);
    struct ab_snapshot_experiment *e = ekey != NULL ? find_experiment(s, ekey) : NULL;
    if (e == NULL) {
        char field[48];
        snprintf(field, sizeof(field), "%s.experiment_key", table);
        ab_fail(ei, AB_ERR_INVALID_FIELD, field, "%s row of unknown experiment %s", table,
                ekey != NULL ? ekey : "(null)");
    }
    return e;
}

static enum ab_err read_variants(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT experiment_key, position, key, weight, payload_json "
                                   "FROM variants ORDER BY experiment_key, position",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    int src;
    while (rc == AB_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct ab_snapshot_experiment *e = row_experiment(st, s, "variants", ei);
        if (e == NULL) {
            rc = AB_ERR_INVALID_FIELD;
            break;
        }
        if (sqlite3_column_int64(st, 1) != (sqlite3_int64)e->nvariants) {
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "variants.position",
                         "positions of %s are not 0, 1, 2...", e->key);
            break;
        }
        e->variants = ab_mem_realloc(e->variants, (e->nvariants + 1) * sizeof(*e->variants));
        struct ab_snapshot_variant *v = &e->variants[e->nvariants++];
        v->key = col_text(st, 2);
        v->weight = sqlite3_column_double(st, 3);
        v->payload = col_json(st, 4);
    }
    if (rc == AB_OK && src != SQLITE_DONE)
        rc = ab_db_fail(db, src, "cannot read variants", ei);
    sqlite3_reset(st);
    return rc;
}

static enum ab_err read_overrides(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT experiment_key, unit, variant_key FROM overrides ORDER BY experiment_key, unit",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    int src;
    while (rc == AB_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct ab_snapshot_experiment *e = row_experiment(st, s, "overrides", ei);
        if (e == NULL) {
            rc = AB_ERR_INVALID_FIELD;
            break;
        }
        e->overrides = ab_mem_realloc(e->overrides, (e->noverrides + 1) * sizeof(*e->overrides));
        struct ab_snapshot_override *o = &e->overrides[e->noverrides++];
        o->unit = col_text(st, 1);
        o->variant = col_text(st, 2);
    }
    if (rc == AB_OK && src != SQLITE_DONE)
        rc = ab_db_fail(db, src, "cannot read overrides", ei);
    sqlite3_reset(st);
    return rc;
}

static int valid_hash(const char *h)
{
    if (h == NULL || strlen(h) != 64)
        return 0;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static enum ab_err read_keys(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc =
        ab_db_prepare(db, "SELECT kind, key_hash FROM api_keys ORDER BY key_hash", &st, ei);
    if (rc != AB_OK)
        return rc;
    int src;
    while (rc == AB_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(st, 0);
        char *h = col_text(st, 1);
        if (!valid_hash(h) || kind == NULL) {
            free(h);
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "api_keys.key_hash",
                         "must be 64 lowercase hex digits");
            break;
        }
        int client = strcmp(kind, "client") == 0;
        char ***list = client ? &s->client_key_hashes : &s->ingest_key_hashes;
        size_t *n = client ? &s->nclient_keys : &s->ningest_keys;
        *list = ab_mem_realloc(*list, (*n + 1) * sizeof(**list));
        (*list)[(*n)++] = h;
    }
    if (rc == AB_OK && src != SQLITE_DONE)
        rc = ab_db_fail(db, src, "cannot read api_keys", ei);
    sqlite3_reset(st);
    return rc;
}

static enum ab_err check_file(struct ab_db *db, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "PRAGMA quick_check", &st, ei);
    if (rc != AB_OK)
        return ab_fail(ei, AB_ERR_IO, NULL, "not a readable SQLite file: %s", ei->message);
    int src = sqlite3_step(st);
    const char *res = src == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (res == NULL || strcmp(res, "ok") != 0)
        rc = ab_fail(ei, AB_ERR_IO, NULL, "integrity check failed: %s",
                     res != NULL ? res : sqlite3_errmsg(ab_db_handle(db)));
    sqlite3_reset(st);
    if (rc != AB_OK)
        return rc;
    int format = 0;
    if ((rc = ab_db_user_version(db, &format, ei)) != AB_OK)
        return rc;
    if (format != AB_SNAPSHOT_FORMAT)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "format_version",
                       "snapshot format %d, this abacus reads format %d", format,
                       AB_SNAPSHOT_FORMAT);
    if ((rc = ab_db_prepare(db, "SELECT format_version, snapshot_version, created_at FROM meta",
                            &st, ei)) != AB_OK)
        return rc;
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != AB_SNAPSHOT_FORMAT ||
        sqlite3_column_int64(st, 1) <= 0) {
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "meta",
                     "needs one row with the format and a positive snapshot version");
    } else {
        s->version = sqlite3_column_int64(st, 1);
        s->created_at = sqlite3_column_int64(st, 2);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "meta", "has more than one row");
    }
    sqlite3_reset(st);
    return rc;
}

enum ab_err ab_snapshot_read(const char *path, struct ab_snapshot **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct ab_snapshot *s = ab_mem_calloc(1, sizeof(*s));
    struct ab_db *db = NULL;
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL, .readonly = 1};
    enum ab_err rc = ab_db_open(path, &o, &db, ei);
    if (rc != AB_OK) {
        rc = AB_ERR_IO;
        goto Exit;
    }
    if ((rc = check_file(db, s, ei)) != AB_OK || (rc = read_experiments(db, s, ei)) != AB_OK ||
        (rc = read_variants(db, s, ei)) != AB_OK || (rc = read_overrides(db, s, ei)) != AB_OK ||
        (rc = read_keys(db, s, ei)) != AB_OK)
        goto Exit;
    for (size_t i = 0; i < s->nexperiments; i++) {
        struct ab_errinfo inner;
        if ((rc = ab_snapshot_validate_experiment(&s->experiments[i], &inner)) != AB_OK) {
            char field[sizeof(ei->field)];
            snprintf(field, sizeof(field), "experiments[%.50s].%.50s",
                     s->experiments[i].key != NULL ? s->experiments[i].key : "?", inner.field);
            ab_fail(ei, rc, field, "experiment %.60s: %s %s",
                    s->experiments[i].key != NULL ? s->experiments[i].key : "?", inner.field,
                    inner.message);
            goto Exit;
        }
    }
    *out = s;
    s = NULL;
Exit:
    if (rc != AB_OK && rc != AB_ERR_INVALID_FIELD && rc != AB_ERR_IO)
        rc = AB_ERR_IO; /* storage errors reading a snapshot mean a bad file */
    ab_db_close(db);
    ab_snapshot_free(s);
    return rc;
}

void ab_snapshot_free(struct ab_snapshot *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nexperiments; i++) {
        struct ab_snapshot_experiment *e = &s->experiments[i];
        free(e->key);
        free(e->hash_attribute);
        free(e->fallback_attribute);
        free(e->seed);
        json_decref(e->condition);
        free(e->layer);
        for (size_t v = 0; v < e->nvariants; v++) {
            free(e->variants[v].key);
            json_decref(e->variants[v].payload);
        }
        free(e->variants);
        for (size_t k = 0; k < e->noverrides; k++) {
            free(e->overrides[k].unit);
            free(e->overrides[k].variant);
        }
        free(e->overrides);
    }
    free(s->experiments);
    for (size_t i = 0; i < s->nclient_keys; i++)
        free(s->client_key_hashes[i]);
    free(s->client_key_hashes);
    for (size_t i = 0; i < s->ningest_keys; i++)
        free(s->ingest_key_hashes[i]);
    free(s->ingest_key_hashes);
    free(s);
}

void ab_snapshot_key_hash(const char *key, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL);
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = HEX[md[i] >> 4];
        out[2 * i + 1] = HEX[md[i] & 15];
    }
    out[64] = '\0';
}

enum ab_err ab_snapshot_file_sha256(const char *path, char out[65], int64_t *size, struct ab_errinfo *ei)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ab_fail(ei, AB_ERR_IO, NULL, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    char buf[65536];
    ssize_t n;
    int64_t total = 0;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        total += n;
    }
    int err = n < 0 ? errno : 0;
    close(fd);
    unsigned char md[32];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    if (err != 0)
        return ab_fail(ei, AB_ERR_IO, NULL, "cannot read %s: %s", path, strerror(err));
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = HEX[md[i] >> 4];
        out[2 * i + 1] = HEX[md[i] & 15];
    }
    out[64] = '\0';
    *size = total;
    return AB_OK;
}

/* ---------------------------------------------------------------- writing */

struct write_job {
    const struct ab_snapshot *snap;
};

static enum ab_err bind_step(struct ab_db *db, sqlite3_stmt *st, struct ab_errinfo *ei)
{
    return ab_db_step_done(db, st, ei);
}

static enum ab_err write_experiment(struct ab_db *db, const struct ab_snapshot_experiment *e,
                                    struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "INSERT INTO experiments (key, status, hash_attribute, fallback_attribute, hash_version, "
        "seed, coverage, condition_json, layer_key, layer_start, layer_end, phase, version) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    char *cond = e->condition != NULL ? json_dumps(e->condition, JSON_COMPACT) : NULL;
    sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->running ? "running" : "paused", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, e->hash_attribute, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, e->fallback_attribute, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, e->hash_version);
    sqlite3_bind_text(st, 6, e->seed, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 7, e->coverage);
    sqlite3_bind_text(st, 8, cond, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 9, e->layer, -1, SQLITE_STATIC);
    if (e->layer != NULL) {
        sqlite3_bind_double(st, 10, e->layer_start);
        sqlite3_bind_double(st, 11, e->layer_end);
    }
    sqlite3_bind_int64(st, 12, e->phase);
    sqlite3_bind_int64(st, 13, e->version);
    free(cond);
    if ((rc = bind_step(db, st, ei)) != AB_OK)
        return rc;
    for (size_t i = 0; i < e->nvariants && rc == AB_OK; i++) {
        if ((rc = ab_db_prepare(db,
                                "INSERT INTO variants (experiment_key, position, key, weight, "
                                "payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                                &st, ei)) != AB_OK)
            return rc;
        char *payload = json_dumps(e->variants[i].payload, JSON_COMPACT | JSON_ENCODE_ANY);
        sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        sqlite3_bind_text(st, 3, e->variants[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_double(st, 4, e->variants[i].weight);
        sqlite3_bind_text(st, 5, payload, -1, SQLITE_TRANSIENT);
        free(payload);
        rc = bind_step(db, st, ei);
    }
    for (size_t i = 0; i < e->noverrides && rc == AB_OK; i++) {
        if ((rc = ab_db_prepare(db,
                                "INSERT INTO overrides (experiment_key, unit, variant_key) "
                                "VALUES (?1, ?2, ?3)",
                                &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_text(st, 1, e->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, e->overrides[i].unit, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, e->overrides[i].variant, -1, SQLITE_STATIC);
        rc = bind_step(db, st, ei);
    }
    return rc;
}

static enum ab_err write_keys(struct ab_db *db, const char *kind, char *const *hashes, size_t n,
                              struct ab_errinfo *ei)
{
    enum ab_err rc = AB_OK;
    for (size_t i = 0; i < n && rc == AB_OK; i++) {
        sqlite3_stmt *st;
        if ((rc = ab_db_prepare(db, "INSERT INTO api_keys (kind, key_hash) VALUES (?1, ?2)", &st,
                                ei)) != AB_OK)
            return rc;
        sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hashes[i], -1, SQLITE_STATIC);
        rc = bind_step(db, st, ei);
    }
    return rc;
}

static enum ab_err write_rows(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    const struct ab_snapshot *s = ((struct write_job *)arg)->snap;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "INSERT INTO meta (format_version, snapshot_version, created_at) VALUES (?1, ?2, ?3)",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int(st, 1, AB_SNAPSHOT_FORMAT);
    sqlite3_bind_int64(st, 2, s->version);
    sqlite3_bind_int64(st, 3, s->created_at);
    if ((rc = bind_step(db, st, ei)) != AB_OK)
        return rc;
    for (size_t i = 0; i < s->nexperiments && rc == AB_OK; i++)
        rc = write_experiment(db, &s->experiments[i], ei);
    if (rc == AB_OK)
        rc = write_keys(db, "client", s->client_key_hashes, s->nclient_keys, ei);
    if (rc == AB_OK)
        rc = write_keys(db, "ingest", s->ingest_key_hashes, s->ningest_keys, ei);
    return rc;
}

static enum ab_err fsync_path(const char *path, int directory, struct ab_errinfo *ei)
{
    int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return ab_fail(ei, AB_ERR_IO, NULL, "cannot fsync %s: %s", path, strerror(err));
    }
    close(fd);
    return AB_OK;
}

enum ab_err ab_snapshot_write(const struct ab_snapshot *snap, const char *path,
                              struct ab_errinfo *ei)
{
    if (snap->version <= 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "version", "must be positive");
    for (size_t i = 0; i < snap->nexperiments; i++) {
        struct ab_errinfo inner;
        enum ab_err rc = ab_snapshot_validate_experiment(&snap->experiments[i], &inner);
        if (rc != AB_OK)
            return ab_fail(ei, rc, inner.field, "experiment %.60s: %s",
                           snap->experiments[i].key != NULL ? snap->experiments[i].key : "?",
                           inner.message);
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
    unlink(tmp);
    struct ab_db *db = NULL;
    /* rollback journal, not WAL: the file must be whole in itself once closed */
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL};
    enum ab_err rc = ab_db_open(tmp, &o, &db, ei);
    if (rc == AB_OK)
        rc = ab_db_exec(db, "PRAGMA journal_mode=DELETE", ei);
    if (rc == AB_OK)
        rc = ab_migrate(db, ab_snapshot_migrations, ab_snapshot_migrations_count, NULL, NULL, ei);
    struct write_job job = {snap};
    if (rc == AB_OK)
        rc = ab_db_transaction(db, write_rows, &job, ei);
    ab_db_close(db);
    if (rc == AB_OK)
        rc = fsync_path(tmp, 0, ei);
    if (rc == AB_OK && rename(tmp, path) != 0)
        rc = ab_fail(ei, AB_ERR_IO, NULL, "cannot rename %s: %s", tmp, strerror(errno));
    if (rc == AB_OK) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s", path);
        rc = fsync_path(dirname(dir), 1, ei);
    }
    if (rc != AB_OK)
        unlink(tmp);
    return rc;
}
