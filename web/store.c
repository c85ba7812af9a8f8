/*
 * The control database's SQL (migrations/0001_control.sql): experiments with their variants,
 * overrides, metrics and phases, layers, metrics, API keys and the audit log. Every write runs in
 * one BEGIN IMMEDIATE transaction that also writes its audit_log row, so a change and its record
 * are kept or lost together. Entities are rendered as the admin API shows them (DESIGN.md
 * section 8). Called by api.c; the snapshot reads are in publish.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "web_int.h"

#define TEXT(st, i, s) sqlite3_bind_text((st), (i), (s), -1, SQLITE_TRANSIENT)

/* Arguments and results of one write transaction. */
struct tx {
    const char *key;
    const json_t *in;     /* the validated entity or patch */
    int64_t expected;     /* version the update is based on */
    const char *action;   /* transitions */
    const char *kind;     /* keys */
    const char *name, *prefix, *hash;
    const struct web_actor *who;
    int64_t now;
    json_t *out;          /* the entity after the change */
    int64_t current;      /* stored version on a conflict */
};

/*
 * Runs fn in one write transaction over t and hands out the entity it left in t->out (*out, the
 * caller's), or NULL when the transaction was rolled back.
 */
static enum ab_err run_tx(struct ab_db *db, ab_db_tx_cb fn, struct tx *t, json_t **out,
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

static const char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t != NULL ? (const char *)t : "";
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    json_t *j = json_loads(col(st, i), JSON_DECODE_ANY, NULL);
    return j != NULL ? j : json_null();
}

static json_t *col_text_or_null(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() : json_string(col(st, i));
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
}

static enum ab_err audit(struct ab_db *db, const struct tx *t, const char *action,
                         const char *type, const char *key, const json_t *before,
                         const json_t *after, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO audit_log (at, actor, action, entity_type, "
                                   "entity_key, before_json, after_json) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    char *b = before != NULL ? dump(before) : NULL, *a = after != NULL ? dump(after) : NULL;
    sqlite3_bind_int64(st, 1, t->now);
    TEXT(st, 2, t->who->name);
    TEXT(st, 3, action);
    TEXT(st, 4, type);
    TEXT(st, 5, key);
    TEXT(st, 6, b);
    TEXT(st, 7, a);
    free(b);
    free(a);
    return ab_db_step_done(db, st, ei);
}

/* ---------------------------------------------------------------- experiments: reading */

#define EXP_COLUMNS                                                                                \
    "e.id, e.key, e.name, e.description, e.hash_attribute, e.fallback_attribute, "                 \
    "e.hash_version, e.seed, e.coverage, e.condition_json, l.key, e.layer_start, e.layer_end, "   \
    "e.planned_sample_size, e.status, e.version, e.phase "

static enum ab_err render_children(struct ab_db *db, int64_t id, json_t *e, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT key, weight, payload_json FROM variants WHERE experiment_id = ?1 "
            "ORDER BY position",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *vars = json_array();
    json_object_set_new(e, "variants", vars);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(vars, json_pack("{s:s, s:f, s:o}", "key", col(st, 0), "weight",
                                              sqlite3_column_double(st, 1), "payload",
                                              col_json(st, 2)));
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
        json_object_set_new(ovr, col(st, 0), json_string(col(st, 1)));
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
        json_array_append_new(mets, json_pack("{s:s, s:s}", "key", col(st, 0), "role", col(st, 1)));
    sqlite3_reset(st);
    return AB_OK;
}

/* The experiment row st is on, as the API shows it; *id gets its rowid. */
static json_t *render_row(sqlite3_stmt *st, int64_t *id)
{
    *id = sqlite3_column_int64(st, 0);
    json_t *layer = sqlite3_column_type(st, 10) == SQLITE_NULL
                        ? json_null()
                        : json_pack("{s:s, s:[f,f]}", "key", col(st, 10), "range",
                                    sqlite3_column_double(st, 11), sqlite3_column_double(st, 12));
    json_t *pss = sqlite3_column_type(st, 13) == SQLITE_NULL
                      ? json_null()
                      : json_integer(sqlite3_column_int64(st, 13));
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:i, s:s, s:f, s:o, s:o, s:o, s:s, s:I, s:I}",
                     "key", col(st, 1), "name", col(st, 2), "description", col(st, 3),
                     "hash_attribute", col(st, 4), "fallback_attribute", col_text_or_null(st, 5),
                     "hash_version", sqlite3_column_int(st, 6), "seed", col(st, 7), "coverage",
                     sqlite3_column_double(st, 8), "condition", col_json(st, 9), "layer", layer,
                     "planned_sample_size", pss, "status", col(st, 14), "version",
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
    TEXT(st, 1, key);
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
    TEXT(st, 1, f->status);
    TEXT(st, 2, f->layer);
    TEXT(st, 3, f->metric);
    TEXT(st, 4, f->q);
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

/* ---------------------------------------------------------------- experiments: writing */

/* The layer's rowid, checking that range does not overlap another live experiment of it. */
static enum ab_err resolve_layer(struct ab_db *db, const json_t *layer, const char *exp_key,
                                 int64_t *layer_id, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT id FROM layers WHERE key = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    const char *lkey = json_string_value(json_object_get(layer, "key"));
    TEXT(st, 1, lkey);
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
    TEXT(st, 2, exp_key);
    sqlite3_bind_double(st, 3, a);
    sqlite3_bind_double(st, 4, b);
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "layer.range",
                     "[%g, %g) overlaps experiment %.100s at [%g, %g) in layer %.100s", a, b,
                     col(st, 0), sqlite3_column_double(st, 1), sqlite3_column_double(st, 2),
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
        char *payload = dump(json_object_get(v, "payload"));
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)i);
        TEXT(st, 3, json_string_value(json_object_get(v, "key")));
        sqlite3_bind_double(st, 4, json_real_value(json_object_get(v, "weight")));
        TEXT(st, 5, payload);
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
        TEXT(st, 2, unit);
        TEXT(st, 3, json_string_value(v));
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
        TEXT(st, 2, json_string_value(json_object_get(v, "key")));
        TEXT(st, 3, json_string_value(json_object_get(v, "role")));
        if ((rc = ab_db_step_done(db, st, ei)) == AB_OK &&
            sqlite3_changes(ab_db_handle(db)) == 0) {
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
    char *s = dump(w);
    json_decref(w);
    return s;
}

/* Writes the experiment row columns ?2.. of st from e (shared by INSERT and UPDATE). */
static void bind_experiment(sqlite3_stmt *st, const json_t *e, int64_t layer_id)
{
    const json_t *layer = json_object_get(e, "layer");
    const json_t *cond = json_object_get(e, "condition");
    char *c = json_is_null(cond) ? NULL : dump(cond);
    TEXT(st, 2, json_string_value(json_object_get(e, "name")));
    TEXT(st, 3, json_string_value(json_object_get(e, "description")));
    TEXT(st, 4, json_string_value(json_object_get(e, "hash_attribute")));
    TEXT(st, 5, json_string_value(json_object_get(e, "fallback_attribute")));
    sqlite3_bind_int64(st, 6, json_integer_value(json_object_get(e, "hash_version")));
    TEXT(st, 7, json_string_value(json_object_get(e, "seed")));
    sqlite3_bind_double(st, 8, json_real_value(json_object_get(e, "coverage")));
    TEXT(st, 9, c);
    if (json_is_object(layer)) {
        sqlite3_bind_int64(st, 10, layer_id);
        sqlite3_bind_double(st, 11, json_real_value(json_array_get(json_object_get(layer, "range"), 0)));
        sqlite3_bind_double(st, 12, json_real_value(json_array_get(json_object_get(layer, "range"), 1)));
    }
    const json_t *pss = json_object_get(e, "planned_sample_size");
    if (json_is_integer(pss))
        sqlite3_bind_int64(st, 13, json_integer_value(pss));
    free(c);
}

static enum ab_err create_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    const json_t *e = t->in;
    const char *key = json_string_value(json_object_get(e, "key"));
    json_t *existing = NULL;
    int64_t id = 0, layer_id = 0;
    enum ab_err rc = load_experiment(db, key, &existing, &id, ei);
    if (rc != AB_OK)
        return rc;
    if (existing != NULL) {
        json_decref(existing);
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "an experiment %.100s already exists",
                       key);
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
    TEXT(st, 1, key);
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
    TEXT(st, 2, json_string_value(json_object_get(e, "seed")));
    TEXT(st, 3, w);
    free(w);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = load_experiment(db, key, &t->out, &id, ei)) != AB_OK)
        return rc;
    return audit(db, t, "experiment.create", "experiment", key, NULL, t->out, ei);
}

enum ab_err web_store_experiment_create(struct ab_db *db, const json_t *exp,
                                        const struct web_actor *who, int64_t now, json_t **out,
                                        struct ab_errinfo *ei)
{
    struct tx t = {.in = exp, .who = who, .now = now};
    return run_tx(db, create_tx, &t, out, ei);
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
            /* new weights re-randomize on purpose (DESIGN.md 4.1): a new seed per phase */
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
    TEXT(st, 3, json_string_value(json_object_get(e, "seed")));
    TEXT(st, 4, w);
    free(w);
    return ab_db_step_done(db, st, ei);
}

static enum ab_err update_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
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
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK || (rc = write_children(db, id, e, ei)) != AB_OK ||
        (rc = load_experiment(db, t->key, &t->out, &id, ei)) != AB_OK)
        goto Exit;
    rc = audit(db, t, "experiment.update", "experiment", t->key, before, t->out, ei);
Exit:
    json_decref(before);
    json_decref(merged);
    json_decref(e);
    return rc;
}

enum ab_err web_store_experiment_update(struct ab_db *db, const char *key,
                                        int64_t expected_version, const json_t *patch,
                                        const struct web_actor *who, int64_t now, json_t **out,
                                        int64_t *current, struct ab_errinfo *ei)
{
    struct tx t = {.key = key, .in = patch, .expected = expected_version, .who = who, .now = now};
    enum ab_err rc = run_tx(db, update_tx, &t, out, ei);
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
    struct tx *t = arg;
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
        rc = ab_fail(ei, AB_ERR_CONFLICT, "status", "cannot %s an experiment that is %s",
                     t->action, status);
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
        TEXT(st, 4, TRANSITIONS[i].to);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        goto Exit;
    if ((rc = ab_db_prepare(db,
                            "UPDATE experiments SET status = ?2, version = version + 1, "
                            "updated_at = ?3 WHERE id = ?1",
                            &st, ei)) != AB_OK)
        goto Exit;
    sqlite3_bind_int64(st, 1, id);
    TEXT(st, 2, TRANSITIONS[i].to);
    sqlite3_bind_int64(st, 3, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = load_experiment(db, t->key, &t->out, &id, ei)) != AB_OK)
        goto Exit;
    char action[32];
    snprintf(action, sizeof(action), "experiment.%s", t->action);
    rc = audit(db, t, action, "experiment", t->key, before, t->out, ei);
Exit:
    json_decref(before);
    return rc;
}

enum ab_err web_store_experiment_transition(struct ab_db *db, const char *key, const char *action,
                                            const struct web_actor *who, int64_t now,
                                            json_t **out, struct ab_errinfo *ei)
{
    struct tx t = {.key = key, .action = action, .who = who, .now = now};
    return run_tx(db, transition_tx, &t, out, ei);
}

/* ---------------------------------------------------------------- metrics */

static json_t *render_metric(sqlite3_stmt *st)
{
    json_t *cw = sqlite3_column_type(st, 7) == SQLITE_NULL
                     ? json_null()
                     : json_real(sqlite3_column_double(st, 7));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:o}", "key", col(st, 0), "name",
                     col(st, 1), "description", col(st, 2), "type", col(st, 3), "event",
                     col(st, 4), "denominator_event", col_text_or_null(st, 5), "direction",
                     col(st, 6), "conversion_window_hours", cw);
}

#define METRIC_SELECT                                                                              \
    "SELECT key, name, description, type, event, denominator_event, direction, "                  \
    "conversion_window_hours FROM metrics "

enum ab_err web_store_metric_get(struct ab_db *db, const char *key, json_t **out,
                                 struct ab_errinfo *ei)
{
    *out = NULL;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, METRIC_SELECT "WHERE key = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, key);
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = render_metric(st);
    else
        rc = ab_fail(ei, AB_ERR_NOT_FOUND, "key", "no metric %.100s", key);
    sqlite3_reset(st);
    return rc;
}

enum ab_err web_store_metric_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, METRIC_SELECT "WHERE archived = 0 ORDER BY key", &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *list = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, render_metric(st));
    sqlite3_reset(st);
    *out = json_pack("{s:o}", "metrics", list);
    return AB_OK;
}

static enum ab_err metric_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    const json_t *m = t->in;
    const char *key = json_string_value(json_object_get(m, "key"));
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT 1 FROM metrics WHERE key = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, key);
    int exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    if (exists)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "a metric %.100s already exists", key);
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO metrics (key, name, description, type, event, "
                            "denominator_event, direction, conversion_window_hours, created_at, "
                            "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                            &st, ei)) != AB_OK)
        return rc;
    static const char *const F[] = {"key",   "name",  "description", "type",
                                    "event", "denominator_event", "direction"};
    for (int i = 0; i < 7; i++)
        TEXT(st, i + 1, json_string_value(json_object_get(m, F[i])));
    const json_t *cw = json_object_get(m, "conversion_window_hours");
    if (json_is_number(cw))
        sqlite3_bind_double(st, 8, json_number_value(cw));
    sqlite3_bind_int64(st, 9, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_store_metric_get(db, key, &t->out, ei)) != AB_OK)
        return rc;
    return audit(db, t, "metric.create", "metric", key, NULL, t->out, ei);
}

enum ab_err web_store_metric_create(struct ab_db *db, const json_t *m, const struct web_actor *who,
                                    int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct tx t = {.in = m, .who = who, .now = now};
    return run_tx(db, metric_tx, &t, out, ei);
}

/* ---------------------------------------------------------------- layers */

static enum ab_err layer_ranges(struct ab_db *db, int64_t id, json_t *layer,
                                struct ab_errinfo *ei)
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
        json_array_append_new(list, json_pack("{s:s, s:[f,f], s:s}", "key", col(st, 0), "range",
                                              sqlite3_column_double(st, 1),
                                              sqlite3_column_double(st, 2), "status",
                                              col(st, 3)));
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
    TEXT(st, 1, key);
    json_t *list = json_array();
    int64_t *ids = NULL;
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ids = ab_mem_realloc(ids, (n + 1) * sizeof(*ids));
        ids[n++] = sqlite3_column_int64(st, 0);
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "key", col(st, 1), "name",
                                              col(st, 2), "description", col(st, 3)));
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
    struct tx *t = arg;
    const char *key = json_string_value(json_object_get(t->in, "key"));
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT 1 FROM layers WHERE key = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, key);
    int exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    if (exists)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "key", "a layer %.100s already exists", key);
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO layers (key, name, description, created_at, updated_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?4)",
                            &st, ei)) != AB_OK)
        return rc;
    TEXT(st, 1, key);
    TEXT(st, 2, json_string_value(json_object_get(t->in, "name")));
    TEXT(st, 3, json_string_value(json_object_get(t->in, "description")));
    sqlite3_bind_int64(st, 4, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_store_layer_get(db, key, &t->out, ei)) != AB_OK)
        return rc;
    return audit(db, t, "layer.create", "layer", key, NULL, t->out, ei);
}

enum ab_err web_store_layer_create(struct ab_db *db, const json_t *l, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct tx t = {.in = l, .who = who, .now = now};
    return run_tx(db, layer_tx, &t, out, ei);
}

/* ---------------------------------------------------------------- API keys */

static json_t *render_key(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "kind", col(st, 1), "name",
                     col(st, 2), "prefix", col(st, 3), "created_by", col(st, 4), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 5));
}

static enum ab_err key_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO api_keys (kind, name, prefix, key_hash, "
                                   "created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, t->kind);
    TEXT(st, 2, t->name);
    TEXT(st, 3, t->prefix);
    TEXT(st, 4, t->hash);
    TEXT(st, 5, t->who->name);
    sqlite3_bind_int64(st, 6, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        return rc;
    int64_t id = sqlite3_last_insert_rowid(ab_db_handle(db));
    if ((rc = ab_db_prepare(db,
                            "SELECT id, kind, name, prefix, created_by, created_at FROM api_keys "
                            "WHERE id = ?1",
                            &st, ei)) != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        t->out = render_key(st);
    sqlite3_reset(st);
    if (t->out == NULL)
        return ab_fail(ei, AB_ERR_STORAGE, NULL, "the new key vanished");
    char action[32];
    snprintf(action, sizeof(action), "%s_key.create", t->kind);
    return audit(db, t, action, "api_key", t->prefix, NULL, t->out, ei);
}

enum ab_err web_store_key_create(struct ab_db *db, const char *kind, const char *name,
                                 const char *prefix, const char *key_hash,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei)
{
    struct tx t = {.kind = kind, .name = name, .prefix = prefix, .hash = key_hash, .who = who,
                   .now = now};
    return run_tx(db, key_tx, &t, out, ei);
}

static enum ab_err revoke_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT id, kind, name, prefix, created_by, created_at FROM "
                                   "api_keys WHERE id = ?1 AND kind = ?2 AND revoked_at IS NULL",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, t->expected);
    TEXT(st, 2, t->kind);
    json_t *before = sqlite3_step(st) == SQLITE_ROW ? render_key(st) : NULL;
    sqlite3_reset(st);
    if (before == NULL)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "id", "no live %s key %lld", t->kind,
                       (long long)t->expected);
    if ((rc = ab_db_prepare(db, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1", &st, ei)) ==
        AB_OK) {
        sqlite3_bind_int64(st, 1, t->expected);
        sqlite3_bind_int64(st, 2, t->now);
        rc = ab_db_step_done(db, st, ei);
    }
    if (rc == AB_OK) {
        t->out = json_deep_copy(before);
        json_object_set_new(t->out, "revoked_at", json_integer(t->now));
        char action[32];
        snprintf(action, sizeof(action), "%s_key.revoke", t->kind);
        rc = audit(db, t, action, "api_key",
                   json_string_value(json_object_get(before, "prefix")), before, t->out, ei);
    }
    json_decref(before);
    return rc;
}

enum ab_err web_store_key_revoke(struct ab_db *db, const char *kind, int64_t id,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei)
{
    struct tx t = {.kind = kind, .expected = id, .who = who, .now = now};
    return run_tx(db, revoke_tx, &t, out, ei);
}

enum ab_err web_store_key_list(struct ab_db *db, const char *kind, json_t **out,
                               struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT id, kind, name, prefix, created_by, created_at FROM "
                                   "api_keys WHERE kind = ?1 AND revoked_at IS NULL ORDER BY id",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, kind);
    json_t *list = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, render_key(st));
    sqlite3_reset(st);
    *out = json_pack("{s:o}", "keys", list);
    return AB_OK;
}

enum ab_err web_store_key_count(struct ab_db *db, const char *kind, int64_t *count,
                                struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT count(*) FROM api_keys WHERE kind = ?1 AND revoked_at IS NULL", &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, kind);
    int src = sqlite3_step(st);
    *count = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return src == SQLITE_ROW ? AB_OK : ab_db_fail(db, src, "cannot count keys", ei);
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
    TEXT(st, 1, key_hash);
    TEXT(st, 2, kind);
    int src = sqlite3_step(st);
    *ok = src == SQLITE_ROW;
    if (*ok)
        snprintf(prefix, 16, "%s", col(st, 0));
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? AB_OK
                                                   : ab_db_fail(db, src, "cannot check key", ei);
}

/* ---------------------------------------------------------------- audit log */

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
            json_array_append_new(changes, json_pack("{s:s, s:O?, s:O}", "field", k, "before",
                                                     old, "after", v));
    }
    json_object_foreach((json_t *)before, k, v)
    {
        if (json_object_get(after, k) == NULL)
            json_array_append_new(changes,
                                  json_pack("{s:s, s:O, s:n}", "field", k, "before", v, "after"));
    }
    return changes;
}

enum ab_err web_store_audit_list(struct ab_db *db, const char *entity_type,
                                 const char *entity_key, int64_t before_id, int64_t limit,
                                 json_t **out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db,
        "SELECT id, at, actor, action, entity_type, entity_key, before_json, after_json FROM "
        "audit_log WHERE (?1 IS NULL OR entity_type = ?1) AND (?2 IS NULL OR entity_key = ?2) "
        "AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4",
        &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, entity_type);
    TEXT(st, 2, entity_key);
    sqlite3_bind_int64(st, 3, before_id);
    sqlite3_bind_int64(st, 4, limit);
    json_t *list = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *b = col_json(st, 6), *a = col_json(st, 7);
        json_array_append_new(
            list, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "id",
                            (json_int_t)sqlite3_column_int64(st, 0), "at",
                            (json_int_t)sqlite3_column_int64(st, 1), "actor", col(st, 2),
                            "action", col(st, 3), "entity_type", col(st, 4), "entity_key",
                            col(st, 5), "changes", diff(b, a), "before", b, "after", a));
    }
    sqlite3_reset(st);
    *out = json_pack("{s:o}", "entries", list);
    return AB_OK;
}

/* ---------------------------------------------------------------- users */

#define USER_COLUMNS "id, email, role, created_at, disabled_at"

static json_t *render_user(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "email", col(st, 1), "role", col(st, 2), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 3), "disabled_at",
                     sqlite3_column_type(st, 4) == SQLITE_NULL
                         ? json_null()
                         : json_integer(sqlite3_column_int64(st, 4)));
}

static enum ab_err user_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    const char *email = json_string_value(json_object_get(t->in, "email"));
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT 1 FROM users WHERE email = ?1", &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, email);
    int exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    if (exists)
        return ab_fail(ei, AB_ERR_CONFLICT, "email", "a user with this email exists");
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO users (email, password_hash, role, created_at) "
                            "VALUES (?1, ?2, ?3, ?4)",
                            &st, ei)) != AB_OK)
        return rc;
    TEXT(st, 1, email);
    TEXT(st, 2, t->hash);
    TEXT(st, 3, json_string_value(json_object_get(t->in, "role")));
    sqlite3_bind_int64(st, 4, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        return rc;
    if ((rc = ab_db_prepare(db, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1", &st, ei)) !=
        AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(ab_db_handle(db)));
    if (sqlite3_step(st) == SQLITE_ROW)
        t->out = render_user(st);
    sqlite3_reset(st);
    if (t->out == NULL)
        return ab_fail(ei, AB_ERR_STORAGE, NULL, "the new user vanished");
    return audit(db, t, "user.create", "user", email, NULL, t->out, ei);
}

enum ab_err web_store_user_create(struct ab_db *db, const json_t *user, const char *password_hash,
                                  const struct web_actor *who, int64_t now, json_t **out,
                                  struct ab_errinfo *ei)
{
    struct tx t = {.in = user, .hash = password_hash, .who = who, .now = now};
    return run_tx(db, user_tx, &t, out, ei);
}

enum ab_err web_store_user_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT " USER_COLUMNS " FROM users ORDER BY id", &st, ei);
    if (rc != AB_OK)
        return rc;
    json_t *list = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(list, render_user(st));
    sqlite3_reset(st);
    *out = json_pack("{s:o}", "users", list);
    return AB_OK;
}

static enum ab_err disable_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct tx *t = arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "SELECT " USER_COLUMNS " FROM users WHERE id = ?1 AND disabled_at IS NULL", &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, t->expected);
    json_t *before = sqlite3_step(st) == SQLITE_ROW ? render_user(st) : NULL;
    sqlite3_reset(st);
    if (before == NULL)
        return ab_fail(ei, AB_ERR_NOT_FOUND, "id", "no live user %lld", (long long)t->expected);
    if ((rc = ab_db_prepare(db, "UPDATE users SET disabled_at = ?2 WHERE id = ?1", &st, ei)) ==
        AB_OK) {
        sqlite3_bind_int64(st, 1, t->expected);
        sqlite3_bind_int64(st, 2, t->now);
        rc = ab_db_step_done(db, st, ei);
    }
    if (rc == AB_OK && (rc = ab_db_prepare(db,
                                           "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 "
                                           "AND ended_at IS NULL",
                                           &st, ei)) == AB_OK) {
        sqlite3_bind_int64(st, 1, t->expected);
        sqlite3_bind_int64(st, 2, t->now);
        rc = ab_db_step_done(db, st, ei);
    }
    if (rc == AB_OK) {
        t->out = json_deep_copy(before);
        json_object_set_new(t->out, "disabled_at", json_integer(t->now));
        rc = audit(db, t, "user.disable", "user",
                   json_string_value(json_object_get(before, "email")), before, t->out, ei);
    }
    json_decref(before);
    return rc;
}

enum ab_err web_store_user_disable(struct ab_db *db, int64_t id, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct tx t = {.expected = id, .who = who, .now = now};
    return run_tx(db, disable_tx, &t, out, ei);
}

enum ab_err web_store_user_count(struct ab_db *db, int64_t *count, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "SELECT count(*) FROM users", &st, ei);
    if (rc != AB_OK)
        return rc;
    int src = sqlite3_step(st);
    *count = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return src == SQLITE_ROW ? AB_OK : ab_db_fail(db, src, "cannot count users", ei);
}

enum ab_err web_store_user_find(struct ab_db *db, const char *email, struct web_user *u,
                                int *found, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT id, email, role, password_hash FROM users WHERE "
                                   "email = ?1 AND disabled_at IS NULL",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, email);
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (*found) {
        u->id = sqlite3_column_int64(st, 0);
        snprintf(u->email, sizeof(u->email), "%s", col(st, 1));
        u->role = web_role_parse(col(st, 2));
        snprintf(u->password_hash, sizeof(u->password_hash), "%s", col(st, 3));
    }
    sqlite3_reset(st);
    return src == SQLITE_ROW || src == SQLITE_DONE ? AB_OK
                                                   : ab_db_fail(db, src, "cannot find user", ei);
}

/* ---------------------------------------------------------------- sessions */

enum ab_err web_store_session_create(struct ab_db *db, int64_t user_id, const char *token_hash,
                                     const char *csrf, int64_t now, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "INSERT INTO sessions (token_hash, user_id, csrf, created_at, "
                                   "last_seen_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, user_id);
    TEXT(st, 3, csrf);
    sqlite3_bind_int64(st, 4, now);
    return ab_db_step_done(db, st, ei);
}

enum ab_err web_store_session_check(struct ab_db *db, const char *token_hash, int64_t now,
                                    int64_t idle_ms, int64_t max_ms, struct web_session *s,
                                    int *found, struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    *found = 0;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT s.id, s.csrf, s.created_at, s.last_seen_at, u.id, "
                                   "u.email, u.role FROM sessions s JOIN users u ON "
                                   "u.id = s.user_id WHERE s.token_hash = ?1 AND s.ended_at IS "
                                   "NULL AND u.disabled_at IS NULL",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    TEXT(st, 1, token_hash);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        memset(s, 0, sizeof(*s));
        s->id = sqlite3_column_int64(st, 0);
        snprintf(s->csrf, sizeof(s->csrf), "%s", col(st, 1));
        s->created_at = sqlite3_column_int64(st, 2);
        s->last_seen_at = sqlite3_column_int64(st, 3);
        s->user.id = sqlite3_column_int64(st, 4);
        snprintf(s->user.email, sizeof(s->user.email), "%s", col(st, 5));
        s->user.role = web_role_parse(col(st, 6));
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "cannot read session", ei);
    if (now - s->last_seen_at >= idle_ms || now - s->created_at >= max_ms)
        return web_store_session_end(db, s->id, now, ei); /* expired: ended, not found */
    *found = 1;
    if (now - s->last_seen_at < 10000)
        return AB_OK;
    if ((rc = ab_db_prepare(db, "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1", &st,
                            ei)) != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, s->id);
    sqlite3_bind_int64(st, 2, now);
    return ab_db_step_done(db, st, ei);
}

enum ab_err web_store_session_end(struct ab_db *db, int64_t id, int64_t now,
                                  struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(
        db, "UPDATE sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL", &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return ab_db_step_done(db, st, ei);
}
