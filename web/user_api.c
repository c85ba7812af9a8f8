/*
 * The routes of browser sessions and users: login (POST /api/v1/session, throttled per email and
 * per client address), who is logged in, logout, and the users an admin creates, lists and
 * disables.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "api.h"

static void send_session(struct ab_http_req *req, int status, const struct web_user *u,
                         const char *csrf, const struct web *w)
{
    ab_http_send_json(req, status,
                      json_pack("{s:s, s:s, s:s, s:I, s:I}", "email", u->email, "role",
                                web_role_name(u->role), "csrf_token", csrf, "idle_timeout_s",
                                (json_int_t)w->cfg.session_idle_s, "max_age_s",
                                (json_int_t)w->cfg.session_max_s));
}

/*
 * POST /api/v1/session {"email", "password"}: a new session (cookie) and its CSRF token. Failed
 * attempts count per email and per client address; over the limit: 429 with Retry-After. Unknown
 * email and wrong password get the same 401 after the same amount of hashing work.
 */
static void handle_login(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    ab_http_add_header(req, "Cache-Control", "no-store");
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    if (db == NULL) {
        ab_http_send_errinfo(req, AB_ERR_UNAVAILABLE, &ei);
        return;
    }
    int failed;
    json_t *body = web_read_body(req, 0, &failed);
    if (body == NULL)
        return;
    const char *email = NULL, *password = NULL;
    enum ab_err rc = web_validate_login(body, &email, &password, &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        json_decref(body);
        return;
    }
    char ip[64], ekey[300], ikey[80];
    ab_http_peer(req, ip, sizeof(ip));
    snprintf(ekey, sizeof(ekey), "email:%s", email);
    for (char *p = ekey; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    snprintf(ikey, sizeof(ikey), "ip:%s", ip);
    int64_t now = ab_clock_now_ms(w->cfg.clock);
    int64_t wait = web_throttle_wait_s(w->throttle, ekey, w->cfg.login_limit_email, now);
    int64_t iwait = web_throttle_wait_s(w->throttle, ikey, w->cfg.login_limit_ip, now);
    if (iwait > wait)
        wait = iwait;
    if (wait > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)wait);
        ab_http_add_header(req, "Retry-After", ra);
        ab_http_send_error(req, AB_ERR_RATE_LIMITED, NULL,
                           "too many failed logins; try again later");
        AB_LOG_W(w->cfg.log, "login_throttled", "ip=%s", ip);
        json_decref(body);
        return;
    }
    struct web_user u;
    int found = 0;
    rc = web_store_user_find(db, email, &u, &found, &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        json_decref(body);
        return;
    }
    int ok = web_password_verify(found ? u.password_hash : w->dummy_hash, password) && found;
    json_decref(body);
    if (!ok) {
        web_throttle_fail(w->throttle, ekey, now);
        web_throttle_fail(w->throttle, ikey, now);
        AB_LOG_W(w->cfg.log, "login_failed", "ip=%s", ip);
        ab_http_send_error(req, AB_ERR_UNAUTHORIZED, NULL, "the email or password is wrong");
        return;
    }
    web_throttle_clear(w->throttle, ekey);
    char token[65], hash[65], csrf[65];
    web_token_new(token);
    web_token_new(csrf);
    ab_snapshot_key_hash(token, hash);
    if ((rc = web_store_session_create(db, u.id, hash, csrf, now, &ei)) != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    char cookie[256];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld",
             WEB_SESSION_COOKIE, token, (long long)w->cfg.session_max_s);
    ab_http_add_header(req, "Set-Cookie", cookie);
    AB_LOG_I(w->cfg.log, "login", "user=%s ip=%s", u.email, ip);
    send_session(req, 201, &u, csrf, w);
}

/*
 * The request's session for the session routes (not cached): the thread's connection in *db and
 * the session in *s; AB_ERR_UNAUTHORIZED (field "session") when nobody is logged in.
 */
static enum ab_err logged_in(struct ab_http_req *req, struct web *w, struct ab_db **db,
                             struct web_session *s, struct ab_errinfo *ei)
{
    ab_http_add_header(req, "Cache-Control", "no-store");
    memset(s, 0, sizeof(*s));
    if ((*db = web_db(w, ab_http_thread(req), ei)) == NULL)
        return AB_ERR_UNAVAILABLE;
    int found = 0;
    enum ab_err rc = web_session_of(req, w, *db, s, &found, ei);
    if (rc == AB_OK && !found)
        rc = ab_fail(ei, AB_ERR_UNAUTHORIZED, "session", "not logged in");
    return rc;
}

/* GET /api/v1/session: who is logged in (401 when nobody), with the CSRF token. */
static void handle_session_get(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    struct web_session s;
    struct ab_db *db = NULL;
    enum ab_err rc = logged_in(req, w, &db, &s, &ei);
    if (rc != AB_OK)
        ab_http_send_errinfo(req, rc, &ei);
    else
        send_session(req, 200, &s.user, s.csrf, w);
}

/* DELETE /api/v1/session (with the CSRF token): logs out, ending the session server-side. */
static void handle_logout(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    struct web_session s;
    struct ab_db *db = NULL;
    enum ab_err rc = logged_in(req, w, &db, &s, &ei);
    if (rc == AB_OK && !web_csrf_ok(req, &s))
        rc = ab_fail(&ei, AB_ERR_FORBIDDEN, "x-csrf-token",
                     "a change needs the session's CSRF token in X-CSRF-Token");
    if (rc == AB_OK)
        rc = web_store_session_end(db, s.id, ab_clock_now_ms(w->cfg.clock), &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    char cookie[128];
    snprintf(cookie, sizeof(cookie), "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
             WEB_SESSION_COOKIE);
    ab_http_add_header(req, "Set-Cookie", cookie);
    ab_http_send_json(req, 200, json_pack("{s:b}", "logged_out", 1));
}

static void handle_user_create(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = NULL;
    json_t *body = web_begin_body(req, w, &who, WEB_ROLE_ADMIN, &db);
    if (body == NULL)
        return;
    json_t *norm = NULL, *out = NULL;
    struct ab_errinfo ei;
    char hash[WEB_HASH_MAX];
    enum ab_err rc = web_validate_user(body, &norm, &ei);
    if (rc == AB_OK)
        rc = web_password_hash(json_string_value(json_object_get(norm, "password")), hash, &ei);
    if (rc == AB_OK)
        rc = web_store_user_create(db, norm, hash, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    web_send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

static void handle_user_list(struct ab_http_req *req, void *data)
{
    web_read_list(req, data, WEB_ROLE_ADMIN, web_store_user_list);
}

static void handle_user_disable(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    int64_t id = 0;
    if (web_param_id(req, "user", &id) != 0)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_user_disable(db, id, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

enum ab_err web_user_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {
        {"POST", "/api/v1/session", handle_login, 0},
        {"GET", "/api/v1/session", handle_session_get, 0},
        {"DELETE", "/api/v1/session", handle_logout, 0},
        {"GET", "/api/v1/users", handle_user_list, 0},
        {"POST", "/api/v1/users", handle_user_create, 0},
        {"DELETE", "/api/v1/users/{id}", handle_user_disable, 0},
    };
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
