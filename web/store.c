/*
 * The steps every store part shares (store.h): the write transaction, column readers, and the
 * one-statement reads and changes that the entities would otherwise each write again.
 */
#include <stdio.h>
#include <stdlib.h>
#include "store.h"

enum ab_err web_tx_run(struct ab_db *db, ab_db_tx_cb fn, struct web_tx *t, json_t **out,
                       struct ab_errinfo *ei)
{
    enum ab_err rc = ab_db_transaction(db, fn, t, ei);
    if (rc != AB_OK) {
        json_decref(t->out);
        t->out = NULL;
    }
    *out = t->out;
    return rc;
}

const char *web_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? (const char *)t : "";
}

json_t *web_col_json(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    json_t *j = json_loads(web_col(st, i), JSON_DECODE_ANY, NULL);
    return j != NULL ? j : json_null();
}

json_t *web_col_text_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_string(web_col(st, i));
}

json_t *web_col_int_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_integer(sqlite3_column_int64(st, i));
}

char *web_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
}

/* Binds arg to ?n of st when st has that parameter (prepared statements keep old bindings). */
static void bind_opt(sqlite3_stmt *st, int n, const char *arg)
{
    if (sqlite3_bind_parameter_count(st) >= n)
        WEB_TEXT(st, n, arg);
}

enum ab_err web_rows(struct ab_db *db, const char *sql, const char *arg, web_render_fn render,
                     json_t **list, struct ab_errinfo *ei)
{
    *list = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, sql, &st, ei);
    if (rc != AB_OK)
        return rc;
    bind_opt(st, 1, arg);
    json_t *rows = json_array();
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(rows, render(st));
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        json_decref(rows);
        return ab_db_fail(db, src, "cannot read the control database", ei);
    }
    *list = rows;
    return AB_OK;
}

enum ab_err web_row_by_key(struct ab_db *db, const char *sql, const char *key, web_render_fn render,
                           json_t **out, struct ab_errinfo *ei)
{
    json_t *list = NULL;
    enum ab_err rc = web_rows(db, sql, key, render, &list, ei);
    *out = rc == AB_OK && json_array_size(list) > 0 ? json_incref(json_array_get(list, 0)) : NULL;
    json_decref(list);
    return rc;
}

enum ab_err web_row_by_id(struct ab_db *db, const char *sql, int64_t id, const char *arg,
                          web_render_fn render, json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, sql, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    bind_opt(st, 2, arg);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = render(st);
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE
               ? AB_OK
               : ab_db_fail(db, src, "cannot read the control database", ei);
}

enum ab_err web_count(struct ab_db *db, const char *sql, const char *arg, int64_t *count,
                      struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, sql, &st, ei);
    if (rc != AB_OK)
        return rc;
    bind_opt(st, 1, arg);
    int src = sqlite3_step(st);
    *count = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return src == SQLITE_ROW ? AB_OK : ab_db_fail(db, src, "cannot count", ei);
}

enum ab_err web_exec_id_now(struct ab_db *db, const char *sql, int64_t id, int64_t now,
                            struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, sql, &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return ab_db_step_done(db, st, ei);
}

enum ab_err web_retire(struct ab_db *db, struct web_tx *t, const struct web_retire *r,
                       struct ab_errinfo *ei)
{
    json_t *before = NULL;
    enum ab_err rc = web_row_by_id(db, r->select_sql, t->id, t->kind, r->render, &before, ei);
    if (rc != AB_OK)
        return rc;
    if (before == NULL)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "id", "no %s %lld", r->what, (long long)t->id);
    if ((rc = web_exec_id_now(db, r->update_sql, t->id, t->now, ei)) == AB_OK) {
        t->out = json_deep_copy(before);
        json_object_set_new(t->out, r->field, json_integer(t->now));
        rc =
            web_audit(db, t, r->action, r->type,
                      json_string_value(json_object_get(before, r->key_field)), before, t->out, ei);
    }
    json_decref(before);
    return rc;
}
