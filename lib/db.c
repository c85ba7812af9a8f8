/*
 * SQLite connection wrapper with a statement cache (see abacus/db.h). The cache is a small array
 * searched by the SQL text's address first, then its contents: a handful of statements per
 * connection, each a string literal, so a linear scan costs less than hashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/db.h"
#include "abacus/mem.h"

struct cached_stmt {
    const char *sql; /* the caller's literal */
    sqlite3_stmt *stmt;
};

struct ab_db {
    sqlite3 *handle;
    struct cached_stmt *cache;
    size_t ncache, capcache;
    int in_tx;
};

enum ab_err ab_db_fail(struct ab_db *db, int sqlite_rc, const char *what, struct ab_errinfo *ei)
{
    int primary = sqlite_rc & 0xff;
    enum ab_err rc =
        primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? AB_ERR_UNAVAILABLE : AB_ERR_STORAGE;
    const char *msg = db != NULL && db->handle != NULL ? sqlite3_errmsg(db->handle)
                                                       : sqlite3_errstr(sqlite_rc);
    return ab_fail(ei, rc, NULL, "%s: %s", what, msg);
}

enum ab_err ab_db_open(const char *path, const struct ab_db_options *opt, struct ab_db **out,
                       struct ab_errinfo *ei)
{
    enum ab_err rc = AB_OK;
    *out = NULL;
    struct ab_db *db = ab_mem_calloc(1, sizeof(*db));
    int flags = opt->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int src = sqlite3_open_v2(path, &db->handle, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = ab_fail(ei, AB_ERR_STORAGE, NULL, "cannot open database %s: %s", path,
                     db->handle != NULL ? sqlite3_errmsg(db->handle) : sqlite3_errstr(src));
        goto Exit;
    }
    sqlite3_extended_result_codes(db->handle, 1);
    sqlite3_busy_timeout(db->handle, opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 5000);
    /* read-only connections scan (the analysis, the report): memory-mapped reads spare a copy
     * of every page (SQLite caps the size at its SQLITE_MAX_MMAP_SIZE) */
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas), "%sPRAGMA foreign_keys=ON; PRAGMA synchronous=%s;",
             opt->readonly ? "PRAGMA mmap_size=1099511627776; " : "PRAGMA journal_mode=WAL; ",
             opt->sync == AB_DB_SYNC_FULL ? "FULL" : "NORMAL");
    char *errmsg = NULL;
    if (sqlite3_exec(db->handle, pragmas, NULL, NULL, &errmsg) != SQLITE_OK) {
        rc = ab_fail(ei, AB_ERR_STORAGE, NULL, "cannot set up database %s: %s", path,
                     errmsg != NULL ? errmsg : "unknown error");
        sqlite3_free(errmsg);
        goto Exit;
    }
    *out = db;
    db = NULL;
Exit:
    ab_db_close(db);
    return rc;
}

void ab_db_close(struct ab_db *db)
{
    if (db == NULL)
        return;
    for (size_t i = 0; i < db->ncache; i++)
        sqlite3_finalize(db->cache[i].stmt);
    free(db->cache);
    sqlite3_close(db->handle);
    free(db);
}

sqlite3 *ab_db_handle(struct ab_db *db)
{
    return db->handle;
}

enum ab_err ab_db_prepare(struct ab_db *db, const char *sql, sqlite3_stmt **out,
                          struct ab_errinfo *ei)
{
    for (size_t i = 0; i < db->ncache; i++) {
        struct cached_stmt *c = &db->cache[i];
        if (c->sql == sql || strcmp(c->sql, sql) == 0) {
            sqlite3_reset(c->stmt);
            sqlite3_clear_bindings(c->stmt);
            *out = c->stmt;
            return AB_OK;
        }
    }
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v3(db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (src != SQLITE_OK)
        return ab_db_fail(db, src, "cannot prepare statement", ei);
    if (db->ncache == db->capcache) {
        db->capcache = db->capcache == 0 ? 16 : db->capcache * 2;
        db->cache = ab_mem_realloc(db->cache, db->capcache * sizeof(*db->cache));
    }
    db->cache[db->ncache++] = (struct cached_stmt){sql, st};
    *out = st;
    return AB_OK;
}

enum ab_err ab_db_exec(struct ab_db *db, const char *sql, struct ab_errinfo *ei)
{
    char *errmsg = NULL;
    int src = sqlite3_exec(db->handle, sql, NULL, NULL, &errmsg);
    if (src == SQLITE_OK)
        return AB_OK;
    int primary = src & 0xff;
    enum ab_err rc =
        primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? AB_ERR_UNAVAILABLE : AB_ERR_STORAGE;
    ab_fail(ei, rc, NULL, "%s", errmsg != NULL ? errmsg : sqlite3_errstr(src));
    sqlite3_free(errmsg);
    return rc;
}

enum ab_err ab_db_step_done(struct ab_db *db, sqlite3_stmt *st, struct ab_errinfo *ei)
{
    int src = sqlite3_step(st);
    enum ab_err rc = src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "statement failed", ei);
    sqlite3_reset(st);
    return rc;
}

enum ab_err ab_db_transaction(struct ab_db *db, ab_db_tx_cb fn, void *arg, struct ab_errinfo *ei)
{
    if (db->in_tx)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "nested transaction");
    enum ab_err rc = ab_db_exec(db, "BEGIN IMMEDIATE", ei);
    if (rc != AB_OK)
        return rc;
    db->in_tx = 1;
    rc = fn(db, arg, ei);
    if (rc == AB_OK)
        rc = ab_db_exec(db, "COMMIT", ei);
    if (rc != AB_OK && !sqlite3_get_autocommit(db->handle))
        sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
    db->in_tx = 0;
    return rc;
}

enum ab_err ab_db_user_version(struct ab_db *db, int *out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st = NULL;
    enum ab_err rc = ab_db_prepare(db, "PRAGMA user_version", &st, ei);
    if (rc != AB_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = ab_db_fail(db, src, "cannot read user_version", ei);
    } else {
        *out = sqlite3_column_int(st, 0);
    }
    sqlite3_reset(st);
    return rc;
}
