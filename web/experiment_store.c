/*
 * The experiments' SQL: an experiment row with its variants, overrides, metrics and phases,
 * rendered as the admin API shows it; creation, the optimistic-concurrency update that starts a
 * new phase when weights or seed change after the start, and the status transitions. Layer
 * ranges are checked against the other live experiments of the layer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "store.h"
/* ---------------------------------------------------------------- reading */

#define EXP_COLUMNS                                                                                \
    "e.id, e.key, e.name, e.description, e.hash_attribute, e.fallback_attribute, "                 \
    "e.hash_version, e.seed, e.coverage, e.condition_json, l.key, e.layer_start, e.layer_end, "    \
    "e.planned_sample_size, e.status, e.version, e.phase "

static enum ab_err render_children(struct ab_db *db, int64_t id, json_t *e, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc =
        ab_db_prepare(db,
                      "SELECT key, weight, payload_json FROM variants WHERE experiment_id = ?1 "
                      "ORDER BY position",
                      &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *vars = json_array();
    json_object_set_new(e, "variants", vars);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(vars, json_pack("{s:s, s:f, s:o}", "key", web_col(st, 0), "weight",
                                              sqlite3_column_double(st, 1), "payload",
                                              web_col_json(st, 2)));
    sqlite3_reset(st);
    if ((rc = ab_db_prepare(db,
                            "SELECT unit, variant_key FROM overrides WHERE experiment_id = ?1 "
                            "ORDER BY unit",
                            &st, ei)) != AB_OK)
        return rc;
    json_t *ovr = json_object();
    json_object_set_new(e, "overrides", ovr);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(ovr, web_col(st, 0), json_string(web_col(st, 1)));
    sqlite3_reset(st);
    if ((rc = ab_db_prepare(db,
                            "SELECT m.key, em.role FROM experiment_metrics em JOIN metrics m "
                            "ON m.id = em.metric_id WHERE em.experiment_id = ?1 ORDER BY m.key",
                            &st, ei)) != AB_OK)
        return rc;
    json_t *mets = json_array();
    json_object_set_new(e, "metrics", mets);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(
            mets, json_pack("{s:s, s:s}", "key", web_col(st, 0), "role", web_col(st, 1)));
    sqlite3_reset(st);
    return AB_OK;
}

/* The experiment row st is on, as the API shows it; *id gets its rowid. */
static json_t *render_row(sqlite3_stmt *st, int64_t *id)
{
    *id = sqlite3_column_int64(st, 0);
    json_t *layer = sqlite3_column_type(st, 10) == SQLITE_NULL
                        ? json_null()
                        : json_pack("{s:s, s:[f,f]}", "key", web_col(st, 10), "range",
                                    sqlite3_column_double(st, 11), sqlite3_column_double(st, 12));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:f, s:o, s:o, s:o, s:s, s:I, s:I}",
                     "key", web_col(st, 1), "name", web_col(st, 2), "description", web_col(st, 3),
                     "hash_attribute", web_col(st, 4), "fallback_attribute",
                     web_col_text_or_null(st, 5), "hash_version", sqlite3_column_int(st, 6), "seed",
                     web_col(st, 7), "coverage", sqlite3_column_double(st, 8), "condition",
                     web_col_json(st, 9), "layer", layer, "planned_sample_size",
                     web_col_int_or_null(st, 13), "status", web_col(st, 14), "version",
                     (json_int_t)sqlite3_column_int64(st, 15), "phase",
                     (json_int_t)sqlite3_column_int64(st, 16));
}

/* Reads experiment key into *out (NULL when absent); *id gets its rowid. */
static enum ab_err load_experiment(struct ab_db *db, const char *key, json_t **out, int64_t *id,
                                   struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT " EXP_COLUMNS "FROM experiments e LEFT JOIN layers l "
                                   "ON l.id = e.layer_id WHERE e.key = ?1",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, key);
    int src = sqlite3_step(st);
    json_t *e = src == SQLITE_ROW ? render_row(st, id) : NULL;
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return ab_db_fail(db, src, "cannot read experiment", ei);
    if (e != NULL && (rc = render_children(db, *id, e, ei)) != AB_OK) {
        json_decref(e);
        return rc;
    }
    *out = e;
    return AB_OK;
}

enum ab_err web_store_experiment_get(struct ab_db *db, const char *key, json_t **out,
                                     struct ab_errinfo *ei)
{
    int64_t id;
    enum ab_err rc = load_experiment(db, key, out, &id, ei);
    if (rc == AB_OK && *out == NULL)
        rc = ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no experiment %.100s", key);
    return rc;
}

enum ab_err web_store_experiment_list(struct ab_db *db, const struct web_experiment_filter *f,
                                      json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT " EXP_COLUMNS "FROM experiments e LEFT JOIN layers l ON l.id = e.layer_id "
        "WHERE (?1 IS NULL AND e.status != 'archived' OR e.status = ?1) "
        "AND (?2 IS NULL OR l.key = ?2) "
        "AND (?3 IS NULL OR EXISTS (SELECT 1 FROM experiment_metrics em JOIN metrics m "
        "ON m.id = em.metric_id WHERE em.experiment_id = e.id AND m.key = ?3)) "
        "AND (?4 IS NULL OR instr(e.key, ?4) > 0 OR instr(e.name, ?4) > 0) "
        "ORDER BY e.key LIMIT ?5 OFFSET ?6",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, f->status);
    WEB_TEXT(st, 2, f->layer);
    WEB_TEXT(st, 3, f->metric);
    WEB_TEXT(st, 4, f->q);
    sqlite3_bind_int64(st, 5, f->limit);
    sqlite3_bind_int64(st, 6, f->offset);
    json_t *list = json_array();
    int64_t *ids = NULL;
    size_t n = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ids = ab_mem_realloc(ids, (n + 1) * sizeof(*ids));
        json_array_append_new(list, render_row(st, &ids[n++]));
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        rc = ab_db_fail(db, src, "cannot list experiments", ei);
    for (size_t i = 0; i < n && rc == AB_OK; i++)
        rc = render_children(db, ids[i], json_array_get(list, i), ei);
    free(ids);
    if (rc != AB_OK) {
        json_decref(list);
        return rc;
    }
    *out = json_pack("{s:o, s:I, s:I}", "experiments", list, "limit", (json_int_t)f->limit,
                     "offset", (json_int_t)f->offset);
    return AB_OK;
}

/* ---------------------------------------------------------------- writing */

/* The layer's rowid, checking that range does not overlap another live experiment of it. */
static enum ab_err resolve_layer(struct ab_db *db, const json_t *layer, const char *exp_key,
                                 int64_t *layer_id, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT id FROM layers WHERE key = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    const char *lkey = json_string_value(json_object_get(layer, "key"));
    WEB_TEXT(st, 1, lkey);
    int found = sqlite3_step(st) == SQLITE_ROW;
    *layer_id = found ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (!found)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "layer.key", "no layer %.100s", lkey);
    double a = json_real_value(json_array_get(json_object_get(layer, "range"), 0));
    double b = json_real_value(json_array_get(json_object_get(layer, "range"), 1));
    if ((rc = ab_db_prepare(db,
                            "SELECT key, layer_start, layer_end FROM experiments WHERE "
                            "layer_id = ?1 AND key != ?2 AND status IN ('draft', 'running', "
                            "'paused') AND layer_start < ?4 AND layer_end > ?3 ORDER BY key "
                            "LIMIT 1",
                            &st, ei)) != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, *layer_id);
    WEB_TEXT(st, 2, exp_key);
    sqlite3_bind_double(st, 3, a);
    sqlite3_bind_double(st, 4, b);
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "layer.range",
                     "[%g, %g) overlaps experiment %.100s at [%g, %g) in layer %.100s", a, b,
                     web_col(st, 0), sqlite3_column_double(st, 1), sqlite3_column_double(st, 2),
                     lkey);
    sqlite3_reset(st);
    return rc;
}

/* Replaces the variants, overrides and metrics of experiment id with those of e. */
static enum ab_err write_children(struct ab_db *db, int64_t id, const json_t *e,
                                  struct ab_errinfo *ei)
{
    static const char *const CLEAR[] = {"DELETE FROM overrides WHERE experiment_id = ?1",
                                        "DELETE FROM variants WHERE experiment_id = ?1",
                                        "DELETE FROM experiment_metrics WHERE experiment_id = ?1"};
    sqlite3_stmt *st;
    enum ab_err rc = AB_OK;
    for (size_t i = 0; i < 3 && rc == AB_OK; i++) {
        if ((rc = ab_db_prepare(db, CLEAR[i], &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_int64(st, 1, id);
        rc = ab_db_step_done(db, st, ei);
    }
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(e, "variants"), i, v)
    {
        if (rc != AB_OK ||
            (rc = ab_db_prepare(db,
                                "INSERT INTO variants (experiment_id, position, key, weight, "
                                "payload_json) VALUES (?1, ?2, ?3, ?4, ?5)",
                                &st, ei)) != AB_OK)
            return rc;
        char *payload = web_dump(json_object_get(v, "payload"));
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        WEB_TEXT(st, 3, json_string_value(json_object_get(v, "key")));
        sqlite3_bind_double(st, 4, json_real_value(json_object_get(v, "weight")));
        WEB_TEXT(st, 5, payload);
        free(payload);
        rc = ab_db_step_done(db, st, ei);
    }
    const char *unit;
    json_object_foreach((json_t *)json_object_get(e, "overrides"), unit, v)
    {
        if (rc != AB_OK ||
            (rc = ab_db_prepare(db,
                                "INSERT INTO overrides (experiment_id, unit, variant_key, "
                                "created_at) VALUES (?1, ?2, ?3, 0)",
                                &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_int64(st, 1, id);
        WEB_TEXT(st, 2, unit);
        WEB_TEXT(st, 3, json_string_value(v));
        rc = ab_db_step_done(db, st, ei);
    }
    json_array_foreach(json_object_get(e, "metrics"), i, v)
    {
        if (rc != AB_OK ||
            (rc = ab_db_prepare(db,
                                "INSERT INTO experiment_metrics (experiment_id, metric_id, role) "
                                "SELECT ?1, id, ?3 FROM metrics WHERE key = ?2 AND archived = 0",
                                &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_int64(st, 1, id);
        WEB_TEXT(st, 2, json_string_value(json_object_get(v, "key")));
        WEB_TEXT(st, 3, json_string_value(json_object_get(v, "role")));
        if ((rc = ab_db_step_done(db, st, ei)) == AB_OK && sqlite3_changes(ab_db_handle(db)) == 0) {
            char field[64];
            snprintf(field, sizeof(field), "metrics[%zu].key", i);
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, field, "no metric %.100s",
                         json_string_value(json_object_get(v, "key")));
        }
    }
    return rc;
}

static char *weights_json(const json_t *e)
{
    json_t *w = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(e, "variants"), i, v)
    {
        json_array_append_new(w, json_real(json_real_value(json_object_get(v, "weight"))));
    }
    char *s = web_dump(w);
    json_decref(w);
    return s;
}

/* Writes the experiment row columns ?2.. of st from e (shared by INSERT and UPDATE). */
static void bind_experiment(sqlite3_stmt *st, const json_t *e, int64_t layer_id)
{
    const json_t *layer = json_object_get(e, "layer");
    const json_t *cond = json_object_get(e, "condition");
    char *c = json_is_null(cond) ? NULL : web_dump(cond);
    WEB_TEXT(st, 2, json_string_value(json_object_get(e, "name")));
    WEB_TEXT(st, 3, json_string_value(json_object_get(e, "description")));
    WEB_TEXT(st, 4, json_string_value(json_object_get(e, "hash_attribute")));
    WEB_TEXT(st, 5, json_string_value(json_object_get(e, "fallback_attribute")));
    sqlite3_bind_int64(st, 6, json_integer_value(json_object_get(e, "hash_version")));
    WEB_TEXT(st, 7, json_string_value(json_object_get(e, "seed")));
    sqlite3_bind_double(st, 8, json_real_value(json_object_get(e, "coverage")));
    WEB_TEXT(st, 9, c);
    if (json_is_object(layer)) {
        sqlite3_bind_int64(st, 10, layer_id);
        sqlite3_bind_double(st, 11,
                            json_real_value(json_array_get(json_object_get(layer, "range"), 0)));
        sqlite3_bind_double(st, 12,
                            json_real_value(json_array_get(json_object_get(layer, "range"), 1)));
    }
    const json_t *pss = json_object_get(e, "planned_sample_size");
    if (json_is_integer(pss))
        sqlite3_bind_int64(st, 13, json_integer_value(pss));
    free(c);
}

static enum ab_err create_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    const json_t *e = t->in;
    const char *key = json_string_value(json_object_get(e, "key"));
    json_t *existing = NULL;
    int64_t id = 0, layer_id = 0;
    enum ab_err rc = load_experiment(db, key, &existing, &id, ei);
    if (rc != AB_OK)
        return rc;
    if (existing != NULL) {
        json_decref(existing);
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "an experiment %.100s already exists", key);
    }
    if (json_is_object(json_object_get(e, "layer")) &&
        (rc = resolve_layer(db, json_object_get(e, "layer"), key, &layer_id, ei)) != AB_OK)
        return rc;
    sqlite3_stmt *st;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO experiments (key, name, description, hash_attribute, "
                            "fallback_attribute, hash_version, seed, coverage, condition_json, "
                            "layer_id, layer_start, layer_end, planned_sample_size, status, "
                            "version, phase, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                            "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'draft', 1, 1, ?14, ?14)",
                            &st, ei)) != AB_OK)
        return rc;
    WEB_TEXT(st, 1, key);
    bind_experiment(st, e, layer_id);
    sqlite3_bind_int64(st, 14, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        return rc;
    id = sqlite3_last_insert_rowid(ab_db_handle(db));
    if ((rc = write_children(db, id, e, ei)) != AB_OK)
        return rc;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO experiment_phases (experiment_id, phase, seed, "
                            "weights_json) VALUES (?1, 1, ?2, ?3)",
                            &st, ei)) != AB_OK)
        return rc;
    char *w = weights_json(e);
    sqlite3_bind_int64(st, 1, id);
    WEB_TEXT(st, 2, json_string_value(json_object_get(e, "seed")));
    WEB_TEXT(st, 3, w);
    free(w);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = load_experiment(db, key, &t->out, &id, ei)) != AB_OK)
        return rc;
    return web_audit(db, t, "experiment.create", "experiment", key, NULL, t->out, ei);
}

enum ab_err web_store_experiment_create(struct ab_db *db, const json_t *exp,
                                        const struct web_actor *who, int64_t now, json_t **out,
                                        struct ab_errinfo *ei)
{
    struct web_tx t = {.in = exp, .who = who, .now = now};
    return web_tx_run(db, create_tx, &t, out, ei);
}

/* The writable fields of an experiment as the validator takes them. */
static json_t *writable(const json_t *rendered)
{
    json_t *w = json_deep_copy(rendered);
    json_object_del(w, "status");
    json_object_del(w, "version");
    json_object_del(w, "phase");
    return w;
}

static int weights_changed(const json_t *a, const json_t *b)
{
    const json_t *va = json_object_get(a, "variants"), *vb = json_object_get(b, "variants");
    if (json_array_size(va) != json_array_size(vb))
        return 1;
    for (size_t i = 0; i < json_array_size(va); i++) {
        double x = json_real_value(json_object_get(json_array_get(va, i), "weight"));
        double y = json_real_value(json_object_get(json_array_get(vb, i), "weight"));
        if (fabs(x - y) > 1e-12)
            return 1;
    }
    return 0;
}

/* Starts phase+1 (weights or seed changed after the experiment started) or rewrites phase 1
 * (a draft). Updates *e's seed when a new phase needs a new one. */
static enum ab_err update_phase(struct ab_db *db, int64_t id, const json_t *before, json_t *e,
                                int64_t now, int64_t *phase, struct ab_errinfo *ei)
{
    const char *status = json_string_value(json_object_get(before, "status"));
    int started = strcmp(status, "draft") != 0;
    int seed_changed = !json_equal(json_object_get(before, "seed"), json_object_get(e, "seed"));
    int w_changed = weights_changed(before, e);
    sqlite3_stmt *st;
    enum ab_err rc;
    if (!started || (!seed_changed && !w_changed)) {
        if ((rc = ab_db_prepare(db,
                                "UPDATE experiment_phases SET seed = ?3, weights_json = ?4 "
                                "WHERE experiment_id = ?1 AND phase = ?2",
                                &st, ei)) != AB_OK)
            return rc;
    } else {
        if (!seed_changed) {
            /* new weights re-randomize on purpose (docs/design.md, "Assignment"): a new seed per
             * phase */
            char seed[WEB_KEY_MAX + 40];
            snprintf(seed, sizeof(seed), "%s:phase%lld",
                     json_string_value(json_object_get(e, "key")), (long long)*phase + 1);
            json_object_set_new(e, "seed", json_string(seed));
        }
        if ((rc = ab_db_prepare(db,
                                "UPDATE experiment_phases SET ended_at = ?2 WHERE "
                                "experiment_id = ?1 AND phase = ?3",
                                &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, *phase);
        if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
            return rc;
        ++*phase;
        if ((rc = ab_db_prepare(db,
                                "INSERT INTO experiment_phases (experiment_id, phase, seed, "
                                "weights_json, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                                &st, ei)) != AB_OK)
            return rc;
        sqlite3_bind_int64(st, 5, now);
    }
    char *w = weights_json(e);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, *phase);
    WEB_TEXT(st, 3, json_string_value(json_object_get(e, "seed")));
    WEB_TEXT(st, 4, w);
    free(w);
    return ab_db_step_done(db, st, ei);
}

static enum ab_err update_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    json_t *before = NULL, *merged = NULL, *e = NULL;
    int64_t id = 0, layer_id = 0;
    enum ab_err rc = load_experiment(db, t->key, &before, &id, ei);
    if (rc != AB_OK)
        return rc;
    if (before == NULL)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no experiment %.100s", t->key);
    t->current = json_integer_value(json_object_get(before, "version"));
    if (t->current != t->expected) {
        rc = ab_fail(ei, AB_ERR_CONFLICT, "version",
                     "the experiment is at version %lld, not %lld: read it again and reapply",
                     (long long)t->current, (long long)t->expected);
        goto Exit;
    }
    if (strcmp(json_string_value(json_object_get(before, "status")), "archived") == 0) {
        rc = ab_fail(ei, AB_ERR_CONFLICT, "status", "an archived experiment cannot change");
        goto Exit;
    }
    merged = writable(before);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)t->in, k, v)
    {
        if (strcmp(k, "status") == 0 || strcmp(k, "phase") == 0) {
            /* server-owned: may be echoed back as read, never changed by a PUT */
            if (!json_equal(v, json_object_get(before, k))) {
                rc = ab_fail(ei, AB_ERR_INVALID_FIELD, k,
                             "is set by the server (use start, pause and stop for the status)");
                goto Exit;
            }
            continue;
        }
        json_object_set(merged, k, (json_t *)v);
    }
    if ((rc = web_validate_experiment(merged, &e, ei)) != AB_OK)
        goto Exit;
    if (!json_equal(json_object_get(e, "key"), json_object_get(before, "key"))) {
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "cannot be changed");
        goto Exit;
    }
    if (json_is_object(json_object_get(e, "layer")) &&
        (rc = resolve_layer(db, json_object_get(e, "layer"), t->key, &layer_id, ei)) != AB_OK)
        goto Exit;
    int64_t phase = json_integer_value(json_object_get(before, "phase"));
    if ((rc = update_phase(db, id, before, e, t->now, &phase, ei)) != AB_OK)
        goto Exit;
    sqlite3_stmt *st;
    if ((rc = ab_db_prepare(db,
                            "UPDATE experiments SET name = ?2, description = ?3, hash_attribute = "
                            "?4, fallback_attribute = ?5, hash_version = ?6, seed = ?7, coverage "
                            "= ?8, condition_json = ?9, layer_id = ?10, layer_start = ?11, "
                            "layer_end = ?12, planned_sample_size = ?13, version = version + 1, "
                            "phase = ?14, updated_at = ?15 WHERE id = ?1",
                            &st, ei)) != AB_OK)
        goto Exit;
    sqlite3_bind_int64(st, 1, id);
    bind_experiment(st, e, layer_id);
    sqlite3_bind_int64(st, 14, phase);
    sqlite3_bind_int64(st, 15, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = write_children(db, id, e, ei)) != AB_OK ||
        (rc = load_experiment(db, t->key, &t->out, &id, ei)) != AB_OK)
        goto Exit;
    rc = web_audit(db, t, "experiment.update", "experiment", t->key, before, t->out, ei);
Exit:
    json_decref(before);
    json_decref(merged);
    json_decref(e);
    return rc;
}

enum ab_err web_store_experiment_update(struct ab_db *db, const char *key, int64_t expected_version,
                                        const json_t *patch, const struct web_actor *who,
                                        int64_t now, json_t **out, int64_t *current,
                                        struct ab_errinfo *ei)
{
    struct web_tx t = {
        .key = key, .in = patch, .expected = expected_version, .who = who, .now = now};
    enum ab_err rc = web_tx_run(db, update_tx, &t, out, ei);
    *current = t.current;
    return rc;
}

/* Allowed transitions: action, the statuses it starts from, the status it leads to. */
static const struct {
    const char *action, *from, *to;
} TRANSITIONS[] = {
    {"start", " draft paused ", "running"},
    {"pause", " running ", "paused"},
    {"stop", " running paused ", "stopped"},
    {"archive", " draft running paused stopped ", "archived"},
};

static enum ab_err transition_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    json_t *before = NULL;
    int64_t id = 0;
    enum ab_err rc = load_experiment(db, t->key, &before, &id, ei);
    if (rc != AB_OK)
        return rc;
    if (before == NULL)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no experiment %.100s", t->key);
    size_t i = 0;
    while (strcmp(TRANSITIONS[i].action, t->action) != 0)
        i++;
    const char *status = json_string_value(json_object_get(before, "status"));
    char needle[32];
    snprintf(needle, sizeof(needle), " %s ", status);
    if (strstr(TRANSITIONS[i].from, needle) == NULL) {
        rc = ab_fail(ei, AB_ERR_CONFLICT, "status", "cannot %s an experiment that is %s", t->action,
                     status);
        goto Exit;
    }
    int64_t phase = json_integer_value(json_object_get(before, "phase"));
    sqlite3_stmt *st;
    const char *phase_sql =
        strcmp(t->action, "start") == 0
            ? "UPDATE experiment_phases SET started_at = ?3 WHERE experiment_id = ?1 AND "
              "phase = ?2 AND started_at IS NULL"
            : "UPDATE experiment_phases SET ended_at = ?3 WHERE experiment_id = ?1 AND phase = "
              "?2 AND ended_at IS NULL AND ?4 IN ('stopped', 'archived')";
    if ((rc = ab_db_prepare(db, phase_sql, &st, ei)) != AB_OK)
        goto Exit;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, phase);
    sqlite3_bind_int64(st, 3, t->now);
    if (strcmp(t->action, "start") != 0)
        WEB_TEXT(st, 4, TRANSITIONS[i].to);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        goto Exit;
    if ((rc = ab_db_prepare(db,
                            "UPDATE experiments SET status = ?2, version = version + 1, "
                            "updated_at = ?3 WHERE id = ?1",
                            &st, ei)) != AB_OK)
        goto Exit;
    sqlite3_bind_int64(st, 1, id);
    WEB_TEXT(st, 2, TRANSITIONS[i].to);
    sqlite3_bind_int64(st, 3, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = load_experiment(db, t->key, &t->out, &id, ei)) != AB_OK)
        goto Exit;
    char action[32];
    snprintf(action, sizeof(action), "experiment.%s", t->action);
    rc = web_audit(db, t, action, "experiment", t->key, before, t->out, ei);
Exit:
    json_decref(before);
    return rc;
}

enum ab_err web_store_experiment_transition(struct ab_db *db, const char *key, const char *action,
                                            const struct web_actor *who, int64_t now, json_t **out,
                                            struct ab_errinfo *ei)
{
    struct web_tx t = {.key = key, .action = action, .who = who, .now = now};
    return web_tx_run(db, transition_tx, &t, out, ei);
}
