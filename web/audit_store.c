/*
 * The audit log's SQL: every store part writes its change's row here (web_audit, inside the
 * change's own transaction), and GET /api/v1/audit reads them back, newest first, with the
 * top-level fields that changed.
 */
#include <stdlib.h>
#include "store.h"

enum ab_err web_audit(struct ab_db *db, const struct web_tx *t, const char *action,
                      const char *type, const char *key, const json_t *before, const json_t *after,
                      struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO audit_log (at, actor, action, entity_type, "
                                   "entity_key, before_json, after_json) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    char *b = before != NULL ? web_dump(before) : NULL;
    char *a = after != NULL ? web_dump(after) : NULL;
    sqlite3_bind_int64(st, 1, t->now);
    WEB_TEXT(st, 2, t->who->name);
    WEB_TEXT(st, 3, action);
    WEB_TEXT(st, 4, type);
    WEB_TEXT(st, 5, key);
    WEB_TEXT(st, 6, b);
    WEB_TEXT(st, 7, a);
    free(b);
    free(a);
    return ab_db_step_done(db, st, ei);
}

/* Top-level fields that differ between before and after: [{field, before, after}]. */
static json_t *diff(const json_t *before, const json_t *after)
{
    json_t *changes = json_array();
    if (!json_is_object(before) || !json_is_object(after))
        return changes;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)after, k, v)
    {
        const json_t *old = json_object_get(before, k);
        if (old == NULL || !json_equal(old, v))
            json_array_append_new(
                changes, json_pack("{s:s, s:O?, s:O}", "field", k, "before", old, "after", v));
    }
    json_object_foreach((json_t *)before, k, v)
    {
        if (json_object_get(after, k) == NULL)
            json_array_append_new(changes,
                                  json_pack("{s:s, s:O, s:n}", "field", k, "before", v, "after"));
    }
    return changes;
}

enum ab_err web_store_audit_list(struct ab_db *db, const char *entity_type, const char *entity_key,
                                 int64_t before_id, int64_t limit, json_t **out,
                                 struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT id, at, actor, action, entity_type, entity_key, before_json, after_json FROM "
        "audit_log WHERE (?1 IS NULL OR entity_type = ?1) AND (?2 IS NULL OR entity_key = ?2) "
        "AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, entity_type);
    WEB_TEXT(st, 2, entity_key);
    sqlite3_bind_int64(st, 3, before_id);
    sqlite3_bind_int64(st, 4, limit);
    json_t *list = json_array();
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *b = web_col_json(st, 6), *a = web_col_json(st, 7);
        json_array_append_new(
            list, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "id",
                            (json_int_t)sqlite3_column_int64(st, 0), "at",
                            (json_int_t)sqlite3_column_int64(st, 1), "actor", web_col(st, 2),
                            "action", web_col(st, 3), "entity_type", web_col(st, 4), "entity_key",
                            web_col(st, 5), "changes", diff(b, a), "before", b, "after", a));
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        json_decref(list);
        return ab_db_fail(db, src, "cannot read the audit log", ei);
    }
    *out = json_pack("{s:o}", "entries", list);
    return AB_OK;
}
