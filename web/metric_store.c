/*
 * The SQL of metrics and layers: creation (each audited), reads by key and the lists. A layer is
 * shown with the ranges its live experiments hold.
 */
#include <stdlib.h>
#include "abacus/mem.h"
#include "store.h"

/* ---------------------------------------------------------------- metrics */

static json_t *render_metric(sqlite3_stmt *st)
{
    json_t *cw = sqlite3_column_type(st, 7) == SQLITE_NULL
                     ? json_null()
                     : json_real(sqlite3_column_double(st, 7));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o}", "key", web_col(st, 0), "name",
                     web_col(st, 1), "description", web_col(st, 2), "type", web_col(st, 3), "event",
                     web_col(st, 4), "denominator_event", web_col_text_or_null(st, 5), "direction",
                     web_col(st, 6), "conversion_window_hours", cw);
}

#define METRIC_SELECT                                                                              \
    "SELECT key, name, description, type, event, denominator_event, direction, "                   \
    "conversion_window_hours FROM metrics "

enum ab_err web_store_metric_get(struct ab_db *db, const char *key, json_t **out,
                                 struct ab_errinfo *ei)
{
    enum ab_err rc =
        web_row_by_key(db, METRIC_SELECT "WHERE key = ?1", key, render_metric, out, ei);
    if (rc == AB_OK && *out == NULL)
        rc = ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no metric %.100s", key);
    return rc;
}

enum ab_err web_store_metric_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    json_t *list = NULL;
    enum ab_err rc = web_rows(db, METRIC_SELECT "WHERE archived = 0 ORDER BY key", NULL,
                              render_metric, &list, ei);
    *out = rc == AB_OK ? json_pack("{s:o}", "metrics", list) : NULL;
    return rc;
}

static enum ab_err metric_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    const json_t *m = t->in;
    const char *key = json_string_value(json_object_get(m, "key"));
    int64_t exists = 0;
    enum ab_err rc =
        web_count(db, "SELECT EXISTS (SELECT 1 FROM metrics WHERE key = ?1)", key, &exists, ei);
    if (rc != AB_OK)
        return rc;
    if (exists)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "a metric %.100s already exists", key);
    sqlite3_stmt *st;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO metrics (key, name, description, type, event, "
                            "denominator_event, direction, conversion_window_hours, created_at, "
                            "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                            &st, ei)) != AB_OK)
        return rc;
    static const char *const F[] = {
        "key", "name", "description", "type", "event", "denominator_event", "direction"};
    for (int i = 0; i < 7; i++)
        WEB_TEXT(st, i + 1, json_string_value(json_object_get(m, F[i])));
    const json_t *cw = json_object_get(m, "conversion_window_hours");
    if (json_is_number(cw))
        sqlite3_bind_double(st, 8, json_number_value(cw));
    sqlite3_bind_int64(st, 9, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_store_metric_get(db, key, &t->out, ei)) != AB_OK)
        return rc;
    return web_audit(db, t, "metric.create", "metric", key, NULL, t->out, ei);
}

enum ab_err web_store_metric_create(struct ab_db *db, const json_t *m, const struct web_actor *who,
                                    int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct web_tx t = {.in = m, .who = who, .now = now};
    return web_tx_run(db, metric_tx, &t, out, ei);
}

/* ---------------------------------------------------------------- layers */

static enum ab_err layer_ranges(struct ab_db *db, int64_t id, json_t *layer, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT key, layer_start, layer_end, status FROM experiments WHERE layer_id = ?1 AND "
        "status IN ('draft', 'running', 'paused') ORDER BY layer_start",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *list = json_array();
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list,
                              json_pack("{s:s, s:[f,f], s:s}", "key", web_col(st, 0), "range",
                                        sqlite3_column_double(st, 1), sqlite3_column_double(st, 2),
                                        "status", web_col(st, 3)));
    sqlite3_reset(st);
    json_object_set_new(layer, "experiments", list);
    return AB_OK;
}

static enum ab_err layer_query(struct ab_db *db, const char *key, json_t **out,
                               struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT id, key, name, description FROM layers WHERE ?1 IS NULL OR key = ?1 ORDER BY key",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, key);
    json_t *list = json_array();
    int64_t *ids = NULL;
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ids = ab_mem_realloc(ids, (n + 1) * sizeof(*ids));
        ids[n++] = sqlite3_column_int64(st, 0);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "key", web_col(st, 1), "name",
                                              web_col(st, 2), "description", web_col(st, 3)));
    }
    sqlite3_reset(st);
    for (size_t i = 0; i < n && rc == AB_OK; i++)
        rc = layer_ranges(db, ids[i], json_array_get(list, i), ei);
    free(ids);
    *out = list;
    return rc;
}

enum ab_err web_store_layer_get(struct ab_db *db, const char *key, json_t **out,
                                struct ab_errinfo *ei)
{
    json_t *list = NULL;
    *out = NULL;
    enum ab_err rc = layer_query(db, key, &list, ei);
    if (rc == AB_OK && json_array_size(list) == 0)
        rc = ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no layer %.100s", key);
    if (rc == AB_OK)
        *out = json_incref(json_array_get(list, 0));
    json_decref(list);
    return rc;
}

enum ab_err web_store_layer_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    json_t *list = NULL;
    enum ab_err rc = layer_query(db, NULL, &list, ei);
    *out = rc == AB_OK ? json_pack("{s:o}", "layers", list) : NULL;
    if (rc != AB_OK)
        json_decref(list);
    return rc;
}

static enum ab_err layer_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    const char *key = json_string_value(json_object_get(t->in, "key"));
    int64_t exists = 0;
    enum ab_err rc =
        web_count(db, "SELECT EXISTS (SELECT 1 FROM layers WHERE key = ?1)", key, &exists, ei);
    if (rc != AB_OK)
        return rc;
    if (exists)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "a layer %.100s already exists", key);
    sqlite3_stmt *st;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO layers (key, name, description, created_at, updated_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?4)",
                            &st, ei)) != AB_OK)
        return rc;
    WEB_TEXT(st, 1, key);
    WEB_TEXT(st, 2, json_string_value(json_object_get(t->in, "name")));
    WEB_TEXT(st, 3, json_string_value(json_object_get(t->in, "description")));
    sqlite3_bind_int64(st, 4, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_store_layer_get(db, key, &t->out, ei)) != AB_OK)
        return rc;
    return web_audit(db, t, "layer.create", "layer", key, NULL, t->out, ei);
}

enum ab_err web_store_layer_create(struct ab_db *db, const json_t *l, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct web_tx t = {.in = l, .who = who, .now = now};
    return web_tx_run(db, layer_tx, &t, out, ei);
}
