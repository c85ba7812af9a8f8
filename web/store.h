/*
 * The steps every store part of the control plane shares (store.c). A store part is the SQL of one
 * entity over the control database (migrations/0001_control.sql): experiment_store.c,
 * metric_store.c (metrics and layers), key_store.c, user_store.c (users and sessions),
 * audit_store.c and snapshot_store.c. Every write runs in one BEGIN IMMEDIATE transaction
 * (web_tx_run) that also writes its audit row (web_audit), so a change and its record are kept
 * or lost together. Entities are rendered as the admin API shows them (docs/admin-api.md).
 */
#ifndef ABACUS_WEB_STORE_H
#define ABACUS_WEB_STORE_H

#include <sqlite3.h>
#include "web_int.h"

/* Binds text s (NULL binds SQL NULL) to parameter i of st, copied. */
#define WEB_TEXT(st, i, s) sqlite3_bind_text((st), (i), (s), -1, SQLITE_TRANSIENT)

/* Arguments and results of one write transaction. */
struct web_tx {
    const char *key;
    const json_t *in;   /* the validated entity or patch */
    int64_t id;         /* the row a revoke or disable is about */
    int64_t expected;   /* version an update is based on */
    const char *action; /* transitions */
    const char *kind;   /* keys */
    const char *name, *prefix, *hash;
    const struct web_actor *who;
    int64_t now;
    json_t *out;     /* the entity after the change */
    int64_t current; /* stored version on a conflict */
};

/*
 * Runs fn in one write transaction over t and hands out the entity it left in t->out (*out, the
 * caller's), or NULL when the transaction was rolled back.
 */
enum ab_err web_tx_run(struct ab_db *db, ab_db_tx_cb fn, struct web_tx *t, json_t **out,
                       struct ab_errinfo *ei);

/* Column i of the row st is on: its text ("" for NULL); its JSON (null for NULL or bad JSON);
 * its text as a JSON string or null; its integer as a JSON integer or null. */
const char *web_col(sqlite3_stmt *st, int i);
json_t *web_col_json(sqlite3_stmt *st, int i);
json_t *web_col_text_or_null(sqlite3_stmt *st, int i);
json_t *web_col_int_or_null(sqlite3_stmt *st, int i);

/* j as compact JSON text with sorted keys, as the control tables keep it (free() it). */
char *web_dump(const json_t *j);

/* Renders the row st is on as the API shows it (a new reference). */
typedef json_t *(*web_render_fn)(sqlite3_stmt *st);

/*
 * The rows of sql, each rendered, into *list (a new array, the caller's). Parameter ?1, when sql
 * has one, is bound to arg (NULL binds SQL NULL).
 */
enum ab_err web_rows(struct ab_db *db, const char *sql, const char *arg, web_render_fn render,
                     json_t **list, struct ab_errinfo *ei);

/* The first row of sql with ?1 = key, rendered into *out; NULL when there is none. */
enum ab_err web_row_by_key(struct ab_db *db, const char *sql, const char *key, web_render_fn render,
                           json_t **out, struct ab_errinfo *ei);

/* The row of sql with ?1 = id (and ?2 = arg when sql has it), rendered into *out; NULL when
 * there is none. */
enum ab_err web_row_by_id(struct ab_db *db, const char *sql, int64_t id, const char *arg,
                          web_render_fn render, json_t **out, struct ab_errinfo *ei);

/* *count gets the single integer sql answers, with ?1 = arg when sql has it. */
enum ab_err web_count(struct ab_db *db, const char *sql, const char *arg, int64_t *count,
                      struct ab_errinfo *ei);

/* Runs the change sql with ?1 = id and ?2 = now. */
enum ab_err web_exec_id_now(struct ab_db *db, const char *sql, int64_t id, int64_t now,
                            struct ab_errinfo *ei);

/* How a live row is retired (a key revoked, a user disabled): see web_retire. */
struct web_retire {
    const char *select_sql; /* the live row: ?1 = id, ?2 = t->kind when sql has it */
    web_render_fn render;
    const char *update_sql; /* ?1 = id, ?2 = now */
    const char *field;      /* set to now in the answer ("revoked_at") */
    const char *what;       /* names the row in the 404: "live user" */
    const char *action;     /* of the audit row ("user.disable") */
    const char *type;       /* entity type of the audit row ("user") */
    const char *key_field;  /* the field of the row that is its audit key ("email") */
};

/*
 * Retires row t->id in t's transaction: AB_ERR_NOT_FOUND (field "id") when it is not live;
 * otherwise runs update_sql, answers the row with field set to t->now in t->out and audits it.
 */
enum ab_err web_retire(struct ab_db *db, struct web_tx *t, const struct web_retire *r,
                       struct ab_errinfo *ei);

/*
 * Writes the audit row of t's change (audit_store.c): action ("experiment.update"), the entity's
 * type and key, and the entity before (NULL for a creation) and after.
 */
enum ab_err web_audit(struct ab_db *db, const struct web_tx *t, const char *action,
                      const char *type, const char *key, const json_t *before, const json_t *after,
                      struct ab_errinfo *ei);

#endif
