/*
 * The SQL of users and browser sessions: users created and disabled (audited; disabling ends the
 * user's sessions), found by email for a login; sessions recorded by the SHA-256 of their cookie,
 * checked against the idle and absolute timeouts, and ended.
 */
#include <stdio.h>
#include <string.h>
#include "store.h"

/* ---------------------------------------------------------------- users */

#define USER_SELECT "SELECT id, email, role, created_at, disabled_at FROM users "

static json_t *render_user(sqlite3_stmt *st)
{
    return json_pack("{s:I, s:s, s:s, s:I, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "email", web_col(st, 1), "role", web_col(st, 2), "created_at",
                     (json_int_t)sqlite3_column_int64(st, 3), "disabled_at",
                     web_col_int_or_null(st, 4));
}

static enum ab_err create_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    const char *email = json_string_value(json_object_get(t->in, "email"));
    int64_t exists = 0;
    enum ab_err rc =
        web_count(db, "SELECT EXISTS (SELECT 1 FROM users WHERE email = ?1)", email, &exists, ei);
    if (rc != AB_OK)
        return rc;
    if (exists)
        return ab_fail(ei, AB_ERR_CONFLICT, "email", "a user with this email exists");
    sqlite3_stmt *st;
    if ((rc = ab_db_prepare(db,
                            "INSERT INTO users (email, password_hash, role, created_at) "
                            "VALUES (?1, ?2, ?3, ?4)",
                            &st, ei)) != AB_OK)
        return rc;
    WEB_TEXT(st, 1, email);
    WEB_TEXT(st, 2, t->hash);
    WEB_TEXT(st, 3, json_string_value(json_object_get(t->in, "role")));
    sqlite3_bind_int64(st, 4, t->now);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK ||
        (rc = web_row_by_id(db, USER_SELECT "WHERE id = ?1",
                            sqlite3_last_insert_rowid(ab_db_handle(db)), NULL, render_user, &t->out,
                            ei)) != AB_OK)
        return rc;
    if (t->out == NULL)
        return ab_fail(ei, AB_ERR_STORAGE, NULL, "the new user vanished");
    return web_audit(db, t, "user.create", "user", email, NULL, t->out, ei);
}

enum ab_err web_store_user_create(struct ab_db *db, const json_t *user, const char *password_hash,
                                  const struct web_actor *who, int64_t now, json_t **out,
                                  struct ab_errinfo *ei)
{
    struct web_tx t = {.in = user, .hash = password_hash, .who = who, .now = now};
    return web_tx_run(db, create_tx, &t, out, ei);
}

enum ab_err web_store_user_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei)
{
    json_t *list = NULL;
    enum ab_err rc = web_rows(db, USER_SELECT "ORDER BY id", NULL, render_user, &list, ei);
    *out = rc == AB_OK ? json_pack("{s:o}", "users", list) : NULL;
    return rc;
}

/* Disabling a user also ends its sessions, in the same transaction. */
static enum ab_err disable_tx(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct web_tx *t = arg;
    static const struct web_retire R = {
        .select_sql = USER_SELECT "WHERE id = ?1 AND disabled_at IS NULL",
        .render = render_user,
        .update_sql = "UPDATE users SET disabled_at = ?2 WHERE id = ?1",
        .field = "disabled_at",
        .what = "live user",
        .action = "user.disable",
        .type = "user",
        .key_field = "email",
    };
    enum ab_err rc = web_retire(db, t, &R, ei);
    if (rc != AB_OK)
        return rc;
    return web_exec_id_now(db,
                           "UPDATE sessions SET ended_at = ?2 WHERE user_id = ?1 AND ended_at IS "
                           "NULL",
                           t->id, t->now, ei);
}

enum ab_err web_store_user_disable(struct ab_db *db, int64_t id, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei)
{
    struct web_tx t = {.id = id, .who = who, .now = now};
    return web_tx_run(db, disable_tx, &t, out, ei);
}

enum ab_err web_store_user_count(struct ab_db *db, int64_t *count, struct ab_errinfo *ei)
{
    return web_count(db, "SELECT count(*) FROM users", NULL, count, ei);
}

enum ab_err web_store_user_find(struct ab_db *db, const char *email, struct web_user *u, int *found,
                                struct ab_errinfo *ei)
{
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db,
                                   "SELECT id, email, role, password_hash FROM users WHERE "
                                   "email = ?1 AND disabled_at IS NULL",
                                   &st, ei);
    if (rc != AB_OK)
        return rc;
    WEB_TEXT(st, 1, email);
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (*found) {
        u->id = sqlite3_column_int64(st, 0);
        snprintf(u->email, sizeof(u->email), "%s", web_col(st, 1));
        u->role = web_role_parse(web_col(st, 2));
        snprintf(u->password_hash, sizeof(u->password_hash), "%s", web_col(st, 3));
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
    WEB_TEXT(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, user_id);
    WEB_TEXT(st, 3, csrf);
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
    WEB_TEXT(st, 1, token_hash);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        memset(s, 0, sizeof(*s));
        s->id = sqlite3_column_int64(st, 0);
        snprintf(s->csrf, sizeof(s->csrf), "%s", web_col(st, 1));
        s->created_at = sqlite3_column_int64(st, 2);
        s->last_seen_at = sqlite3_column_int64(st, 3);
        s->user.id = sqlite3_column_int64(st, 4);
        snprintf(s->user.email, sizeof(s->user.email), "%s", web_col(st, 5));
        s->user.role = web_role_parse(web_col(st, 6));
    }
    sqlite3_reset(st);
    if (src != SQLITE_ROW)
        return src == SQLITE_DONE ? AB_OK : ab_db_fail(db, src, "cannot read session", ei);
    if (now - s->last_seen_at >= idle_ms || now - s->created_at >= max_ms)
        return web_store_session_end(db, s->id, now, ei); /* expired: ended, not found */
    *found = 1;
    if (now - s->last_seen_at < 10000)
        return AB_OK;
    return web_exec_id_now(db, "UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1", s->id, now,
                           ei);
}

enum ab_err web_store_session_end(struct ab_db *db, int64_t id, int64_t now, struct ab_errinfo *ei)
{
    return web_exec_id_now(
        db, "UPDATE sessions SET ended_at = ?2 WHERE id = ?1 AND ended_at IS NULL", id, now, ei);
}
