/*
 * The SQL of API keys (admin, client and ingest): creation and revocation (both audited), the
 * live list, the count and the check of a presented key. Only a key's SHA-256 is stored.
 */
#include <stdio.h>
#include "store.h"

#define KEY_SELECT "SELECT id, kind, name, prefix, created_by, created_at FROM api_keys "

static json_t *render_key(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "kind", web_col(st, 1), "name",
                     web_col(st, 2), "prefix", web_col(st, 3), "created_by", web_col(st, 4),
                     "created_at", (json_int_t)sqlite3_column_int64(st, 5));
}

static enum ab_err create_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO api_keys (kind, name, prefix, key_hash, "
                                   "created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, t->kind);
    WEB_TEXT(st, 2, t->name);
    WEB_TEXT(st, 3, t->prefix);
    WEB_TEXT(st, 4, t->hash);
    WEB_TEXT(st, 5, t->who->name);
    sqlite3_bind_int64(st, 6, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_row_by_id(db, KEY_SELECT "WHERE id = ?1",
                            sqlite3_last_insert_rowid(ab_db_handle(db)), NULL, render_key, &t->out,
                            ei)) != AB_OK)
        return rc;
    if (t->out == NULL)
        return ab_fail(ei, AB_ERR_STORAGE, NULL, "the new key vanished");
    char action[32];
    snprintf(action, sizeof(action), "%s_key.create", t->kind);
    return web_audit(db, t, action, "api_key", t->prefix, NULL, t->out, ei);
}

enum ab_err web_store_key_create(struct ab_db *db, const char *kind, const char *name,
                                 const char *prefix, const char *key_hash,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei)
{
    struct web_tx t = {
        .kind = kind, .name = name, .prefix = prefix, .hash = key_hash, .who = who, .now = now};
    return web_tx_run(db, create_tx, &t, out, ei);
}

static enum ab_err revoke_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    char what[32], action[32];
    snprintf(what, sizeof(what), "live %s key", t->kind);
    snprintf(action, sizeof(action), "%s_key.revoke", t->kind);
    const struct web_retire r = {
        .select_sql = KEY_SELECT "WHERE id = ?1 AND kind = ?2 AND revoked_at IS NULL",
        .render = render_key,
        .update_sql = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1",
        .field = "revoked_at",
        .what = what,
        .action = action,
        .type = "api_key",
        .key_field = "prefix",
    };
    return web_retire(db, t, &r, ei);
}

enum ab_err web_store_key_revoke(struct ab_db *db, const char *kind, int64_t id,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei)
{
    struct web_tx t = {.kind = kind, .id = id, .who = who, .now = now};
    return web_tx_run(db, revoke_tx, &t, out, ei);
}

enum ab_err web_store_key_list(struct ab_db *db, const char *kind, json_t **out,
                               struct ab_errinfo *ei)
{
    json_t *list = NULL;
    enum ab_err rc = web_rows(db, KEY_SELECT "WHERE kind = ?1 AND revoked_at IS NULL ORDER BY id",
                              kind, render_key, &list, ei);
    *out = rc == AB_OK ? json_pack("{s:o}", "keys", list) : NULL;
    return rc;
}

enum ab_err web_store_key_count(struct ab_db *db, const char *kind, int64_t *count,
                                struct ab_errinfo *ei)
{
    return web_count(db, "SELECT count(*) FROM api_keys WHERE kind = ?1 AND revoked_at IS NULL",
                     kind, count, ei);
}

enum ab_err web_store_key_check(struct ab_db *db, const char *kind, const char *key_hash, int *ok,
                                char prefix[16], struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT prefix FROM api_keys WHERE key_hash = ?1 AND kind = ?2 "
                                   "AND revoked_at IS NULL",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, key_hash);
    WEB_TEXT(st, 2, kind);
    int src = sqlite3_step(st);
    *ok = src == SQLITE_ROW;
    if (*ok)
        snprintf(prefix, 16, "%s", web_col(st, 0));
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? AB_OK
                                                   : ab_db_fail(db, src, "cannot check key", ei);
}
