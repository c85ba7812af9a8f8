/*
 * The steps every API part shares (api.h): authentication by admin key or session, the JSON body,
 * answers, parameters, the generic reads and creation, and the mounting of every part's routes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include "abacus/json.h"
#include "abacus/mem.h"
#include "api.h"

/* 1 for methods that change something (they need the CSRF token with a session). */
static int changes_state(const struct ab_http_req *req)
{
    const char *m = ab_http_method(req);
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

enum ab_err web_session_of(struct ab_http_req *req, struct web *w, struct ab_db *db,
                           struct web_session *s, int *found, struct ab_errinfo *ei)
{
    *found = 0;
    size_t len = 0;
    const char *cookie = ab_http_header(req, "cookie", &len);
    char token[80], hash[65];
    if (cookie == NULL ||
        web_cookie_get(cookie, len, WEB_SESSION_COOKIE, token, sizeof(token)) != 0)
        return AB_OK;
    ab_snapshot_key_hash(token, hash);
    return web_store_session_check(db, hash, ab_clock_now_ms(w->cfg.clock),
                                   w->cfg.session_idle_s * 1000, w->cfg.session_max_s * 1000, s,
                                   found, ei);
}

int web_csrf_ok(struct ab_http_req *req, const struct web_session *s)
{
    size_t len = 0;
    const char *t = ab_http_header(req, "x-csrf-token", &len);
    return t != NULL && len == 64 && strlen(s->csrf) == 64 && sodium_memcmp(t, s->csrf, 64) == 0;
}

struct ab_db *web_begin(struct ab_http_req *req, struct web *w, struct web_actor *who,
                        enum web_role need)
{
    struct ab_errinfo ei;
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    if (db == NULL) {
        ab_http_send_errinfo(req, AB_ERR_UNAVAILABLE, &ei);
        return NULL;
    }
    ab_http_add_header(req, "Cache-Control", "no-store");
    size_t len = 0;
    const char *auth = ab_http_header(req, "authorization", &len);
    if (auth == NULL) {
        struct web_session s;
        memset(&s, 0, sizeof(s));
        int found = 0;
        enum ab_err rc = web_session_of(req, w, db, &s, &found, &ei);
        if (rc != AB_OK) {
            ab_http_send_errinfo(req, rc, &ei);
            return NULL;
        }
        if (!found) {
            ab_http_add_header(req, "WWW-Authenticate", "Bearer");
            ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "authorization",
                               "log in (POST /api/v1/session) or send an admin API key as "
                               "Authorization: Bearer <key>");
            return NULL;
        }
        if (changes_state(req) && !web_csrf_ok(req, &s)) {
            ab_http_send_error(req, AB_ERR_FORBIDDEN, "x-csrf-token",
                               "a change needs the session's CSRF token in X-CSRF-Token");
            return NULL;
        }
        if (s.user.role < need) {
            ab_http_send_error(req, AB_ERR_FORBIDDEN, "role",
                               "the %s role may not do this (needs %s)", web_role_name(s.user.role),
                               web_role_name(need));
            return NULL;
        }
        snprintf(who->name, sizeof(who->name), "user:%.58s", s.user.email);
        return db;
    }
    if (len < 8 || strncasecmp(auth, "Bearer ", 7) != 0) {
        ab_http_add_header(req, "WWW-Authenticate", "Bearer");
        ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "authorization",
                           "send an admin API key as Authorization: Bearer <key>");
        return NULL;
    }
    const char *key = auth + 7;
    while (*key == ' ')
        key++;
    char hash[65], prefix[16];
    ab_snapshot_key_hash(key, hash);
    int ok = 0;
    enum ab_err rc = web_store_key_check(db, "admin", hash, &ok, prefix, &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return NULL;
    }
    if (!ok) {
        ab_http_add_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "authorization",
                           "the API key is not a valid admin key");
        return NULL;
    }
    snprintf(who->name, sizeof(who->name), "key:%s", prefix);
    return db;
}

json_t *web_read_body(struct ab_http_req *req, int allow_empty, int *failed)
{
    size_t len = 0;
    *failed = 0;
    ab_http_body(req, &len);
    if (len == 0 && allow_empty)
        return NULL;
    static const struct ab_json_limits LIMITS = {WEB_BODY_MAX, 32};
    json_t *doc = ab_http_json_object(req, &LIMITS);
    *failed = doc == NULL;
    return doc;
}

json_t *web_begin_body(struct ab_http_req *req, struct web *w, struct web_actor *who,
                       enum web_role need, struct ab_db **db)
{
    int failed;
    *db = web_begin(req, w, who, need);
    return *db != NULL ? web_read_body(req, 0, &failed) : NULL;
}

void web_send_result(struct ab_http_req *req, enum ab_err rc, int status, json_t *out,
                     const struct ab_errinfo *ei)
{
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, ei);
        return;
    }
    ab_http_send_json(req, status, out);
}

int64_t web_param_int(struct ab_http_req *req, const char *name, int64_t dflt, int64_t max,
                      int *bad)
{
    const char *v = ab_url_query_get(ab_http_query(req), name);
    if (v == NULL)
        return dflt;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < 0 || n > max) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, name, "must be an integer from 0 to %lld",
                           (long long)max);
        *bad = 1;
        return 0;
    }
    return n;
}

int web_param_id(struct ab_http_req *req, const char *what, int64_t *id)
{
    const char *text = ab_http_param(req, "id");
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v <= 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "id", "no %s %.40s", what, text);
        return -1;
    }
    *id = v;
    return 0;
}

void web_read_list(struct ab_http_req *req, struct web *w, enum web_role role, web_list_fn list)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, role);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = list(db, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

void web_read_one(struct ab_http_req *req, struct web *w, web_get_fn get)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = get(db, ab_http_param(req, "key"), &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

void web_create_entity(struct ab_http_req *req, struct web *w, web_validate_fn validate,
                       web_create_fn create)
{
    struct web_actor who;
    struct ab_db *db = NULL;
    json_t *body = web_begin_body(req, w, &who, WEB_ROLE_EDITOR, &db);
    if (body == NULL)
        return;
    json_t *norm = NULL, *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = validate(body, &norm, &ei);
    if (rc == AB_OK)
        rc = create(db, norm, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK)
        web_changed(w);
    web_send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

enum ab_err web_routes_mount(struct web *w, struct ab_http_server *srv,
                             const struct web_route *routes, size_t n, struct ab_errinfo *ei)
{
    for (size_t i = 0; i < n; i++) {
        enum ab_err rc = ab_http_route(srv, routes[i].method, routes[i].pattern, routes[i].cb, w,
                                       routes[i].max_body, ei);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

typedef enum ab_err (*mount_fn)(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);

enum ab_err web_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const mount_fn PARTS[] = {web_experiment_mount, web_metric_mount, web_key_mount,
                                     web_user_mount,       web_audit_mount,  web_snapshot_mount,
                                     web_report_mount,     web_static_mount};
    w->ndbs = ab_http_server_threads(srv);
    w->dbs = ab_mem_calloc((size_t)w->ndbs, sizeof(struct ab_db *));
    for (size_t i = 0; i < sizeof(PARTS) / sizeof(PARTS[0]); i++) {
        enum ab_err rc = PARTS[i](w, srv, ei);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}
