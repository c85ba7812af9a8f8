/*
 * HTTP glue of the control plane: the admin JSON API under /api/v1/ (an admin API key as a Bearer
 * token, or a browser session cookie with its CSRF token, on every route; roles per route), the
 * session and user routes, and the public snapshot routes GET /v1/snapshots/latest and
 * /v1/snapshots/{version}.db that assign nodes and HTTP caches fetch. Handlers parse, call
 * validate.c and store.c on the worker thread's own SQLite connection, and answer; the automatic
 * publish is signalled after each committed change. Documented in docs/admin-api.md.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "abacus/json.h"
#include "abacus/mem.h"
#include "web_int.h"

#define SNAPSHOT_FILE_MAX ((int64_t)1 << 30) /* largest snapshot file served, bytes */

/* ---------------------------------------------------------------- common steps */

/* 1 for methods that change something (they need the CSRF token with a session). */
static int changes_state(const struct ab_http_req *req)
{
    const char *m = ab_http_method(req);
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/*
 * The request's live session from its cookie; *found 0 when there is none (no cookie, unknown,
 * ended, idle or too old). Errors only for the database.
 */
static enum ab_err session_of(struct ab_http_req *req, struct web *w, struct ab_db *db,
                              struct web_session *s, int *found, struct ab_errinfo *ei)
{
    *found = 0;
    size_t len = 0;
    const char *cookie = ab_http_header(req, "cookie", &len);
    char token[80], hash[65];
    if (cookie == NULL || web_cookie_get(cookie, len, WEB_SESSION_COOKIE, token, sizeof(token)) != 0)
        return AB_OK;
    ab_snapshot_key_hash(token, hash);
    return web_store_session_check(db, hash, ab_clock_now_ms(w->cfg.clock),
                                   w->cfg.session_idle_s * 1000, w->cfg.session_max_s * 1000, s,
                                   found, ei);
}

/* 1 when the request carries the session's CSRF token as X-CSRF-Token. */
static int csrf_ok(struct ab_http_req *req, const struct web_session *s)
{
    size_t len = 0;
    const char *t = ab_http_header(req, "x-csrf-token", &len);
    return t != NULL && len == 64 && strlen(s->csrf) == 64 && sodium_memcmp(t, s->csrf, 64) == 0;
}

/*
 * Authenticates the request and finds the thread's connection; answers itself on failure (401
 * without credentials, 403 without the CSRF token or below the role need). Credentials: an admin
 * API key as a Bearer token (acts as an admin), or a session cookie, with the session's CSRF token
 * in X-CSRF-Token on every state change. who gets "key:<prefix>" or "user:<email>".
 */
static struct ab_db *begin(struct ab_http_req *req, struct web *w, struct web_actor *who,
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
        enum ab_err rc = session_of(req, w, db, &s, &found, &ei);
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
        if (changes_state(req) && !csrf_ok(req, &s)) {
            ab_http_send_error(req, AB_ERR_FORBIDDEN, "x-csrf-token",
                               "a change needs the session's CSRF token in X-CSRF-Token");
            return NULL;
        }
        if (s.user.role < need) {
            ab_http_send_error(req, AB_ERR_FORBIDDEN, "role",
                               "the %s role may not do this (needs %s)",
                               web_role_name(s.user.role), web_role_name(need));
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

struct ab_db *web_begin(struct ab_http_req *req, struct web *w, struct web_actor *who,
                        enum web_role need)
{
    return begin(req, w, who, need);
}

/* The JSON body (an object); answers 415/400/413 itself and returns NULL on failure. An empty
 * body is NULL without an answer when allow_empty. */
static json_t *read_body(struct ab_http_req *req, int allow_empty, int *failed)
{
    size_t len = 0;
    const char *body = ab_http_body(req, &len);
    *failed = 0;
    if (len == 0 && allow_empty)
        return NULL;
    size_t ctlen = 0;
    const char *ct = ab_http_header(req, "content-type", &ctlen);
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        ab_http_send_error(req, AB_ERR_UNSUPPORTED_MEDIA, "content-type",
                           "send the body as application/json");
        *failed = 1;
        return NULL;
    }
    struct ab_json_limits lim = {WEB_BODY_MAX, 32};
    struct ab_errinfo ei;
    json_t *doc = NULL;
    enum ab_err rc = ab_json_parse(body, len, &lim, &doc, &ei);
    if (rc == AB_OK && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
        rc = ab_fail(&ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    }
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        *failed = 1;
    }
    return doc;
}

static void send_result(struct ab_http_req *req, enum ab_err rc, int status, json_t *out,
                        const struct ab_errinfo *ei)
{
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, ei);
        return;
    }
    ab_http_send_json(req, status, out);
}

static void set_etag_version(struct ab_http_req *req, const json_t *exp)
{
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"",
             (long long)json_integer_value(json_object_get(exp, "version")));
    ab_http_add_header(req, "ETag", etag);
}

static int64_t param_int(struct ab_http_req *req, const char *name, int64_t dflt, int64_t max,
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

/* ---------------------------------------------------------------- experiments */

static void handle_experiment_list(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    const struct ab_url_query *q = ab_http_query(req);
    for (size_t i = 0; i < q->count; i++) {
        static const char *const KNOWN = " status layer metric q limit offset ";
        char needle[80];
        snprintf(needle, sizeof(needle), " %.60s ", q->params[i].name);
        if (strstr(KNOWN, needle) == NULL) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, q->params[i].name,
                               "unknown filter (status, layer, metric, q, limit, offset)");
            return;
        }
    }
    int bad = 0;
    struct web_experiment_filter f = {
        .status = ab_url_query_get(q, "status"),
        .layer = ab_url_query_get(q, "layer"),
        .metric = ab_url_query_get(q, "metric"),
        .q = ab_url_query_get(q, "q"),
    };
    f.limit = param_int(req, "limit", 100, 1000, &bad);
    if (!bad)
        f.offset = param_int(req, "offset", 0, INT64_MAX / 2, &bad);
    if (bad)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_list(db, &f, &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

static void handle_experiment_create(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_EDITOR);
    int failed;
    json_t *body = db != NULL ? read_body(req, 0, &failed) : NULL;
    if (body == NULL)
        return;
    struct ab_errinfo ei;
    json_t *exp = NULL, *out = NULL;
    enum ab_err rc = AB_OK;
    static const char *const SERVER_OWNED[] = {"version", "phase", "status"};
    for (size_t i = 0; i < 3 && rc == AB_OK; i++)
        if (json_object_get(body, SERVER_OWNED[i]) != NULL)
            rc = ab_fail(&ei, AB_ERR_INVALID_FIELD, SERVER_OWNED[i],
                         "is set by the server (a new experiment is a draft at version 1)");
    if (rc == AB_OK)
        rc = web_validate_experiment(body, &exp, &ei);
    if (rc == AB_OK)
        rc = web_store_experiment_create(db, exp, &who, ab_clock_now_ms(w->cfg.clock), &out,
                                         &ei);
    if (rc == AB_OK) {
        web_changed(w);
        set_etag_version(req, out);
    }
    send_result(req, rc, 201, out, &ei);
    json_decref(exp);
    json_decref(body);
}

static void handle_experiment_get(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_get(db, ab_http_param(req, "key"), &out, &ei);
    if (rc == AB_OK)
        set_etag_version(req, out);
    send_result(req, rc, 200, out, &ei);
}

/* The version a PUT is based on: If-Match "<n>" (or W/"<n>"), else the body's version. */
static int based_on(struct ab_http_req *req, const json_t *body, int64_t *version)
{
    size_t len = 0;
    const char *im = ab_http_header(req, "if-match", &len);
    const json_t *bv = json_object_get(body, "version");
    if (im != NULL) {
        const char *p = im;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p == '"')
            p++;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno != 0 || end == p || v <= 0 || (*end != '"' && *end != '\0')) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, "if-match",
                               "must be the experiment's version as an ETag: \"<version>\"");
            return -1;
        }
        if (bv != NULL && (!json_is_integer(bv) || json_integer_value(bv) != v)) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, "version",
                               "differs from If-Match");
            return -1;
        }
        *version = v;
        return 0;
    }
    if (!json_is_integer(bv) || json_integer_value(bv) <= 0) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "version",
                           "is required: send the version the change is based on (If-Match: "
                           "\"<version>\" or the body's version)");
        return -1;
    }
    *version = json_integer_value(bv);
    return 0;
}

static void handle_experiment_put(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_EDITOR);
    int failed;
    json_t *body = db != NULL ? read_body(req, 0, &failed) : NULL;
    if (body == NULL)
        return;
    int64_t version = 0, current = 0;
    if (based_on(req, body, &version) != 0) {
        json_decref(body);
        return;
    }
    json_object_del(body, "version");
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_update(db, ab_http_param(req, "key"), version, body,
                                                 &who, ab_clock_now_ms(w->cfg.clock), &out,
                                                 &current, &ei);
    if (rc == AB_ERR_CONFLICT && strcmp(ei.field, "version") == 0) {
        json_t *doc = ab_err_body(rc, ei.message, ei.field);
        json_object_set_new(json_object_get(doc, "error"), "current_version",
                            json_integer(current));
        char etag[32];
        snprintf(etag, sizeof(etag), "\"%lld\"", (long long)current);
        ab_http_add_header(req, "ETag", etag);
        ab_http_send_json(req, 409, doc);
    } else {
        if (rc == AB_OK) {
            web_changed(w);
            set_etag_version(req, out);
        }
        send_result(req, rc, 200, out, &ei);
    }
    json_decref(body);
}

static void transition(struct ab_http_req *req, struct web *w, const char *action)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_EDITOR);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_transition(db, ab_http_param(req, "key"), action, &who,
                                                     ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK) {
        web_changed(w);
        set_etag_version(req, out);
    }
    send_result(req, rc, 200, out, &ei);
}

/* The stored results (GET .../results) or recomputed ones (POST .../analyze), from the analysis. */
static void results(struct ab_http_req *req, struct web *w, int recompute)
{
    struct web_actor who;
    if (begin(req, w, &who, recompute ? WEB_ROLE_EDITOR : WEB_ROLE_VIEWER) == NULL)
        return;
    if (w->cfg.results == NULL) {
        ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "this server does not analyse results");
        return;
    }
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = w->cfg.results(w->cfg.results_data, ab_http_param(req, "key"), recompute,
                                    &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

static void handle_results(struct ab_http_req *req, void *data)
{
    results(req, data, 0);
}

static void handle_experiment_action(struct ab_http_req *req, void *data)
{
    const char *action = ab_http_param(req, "action");
    if (strcmp(action, "analyze") == 0) {
        results(req, data, 1);
        return;
    }
    if (strcmp(action, "start") != 0 && strcmp(action, "pause") != 0 &&
        strcmp(action, "stop") != 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "action",
                           "no such action %.40s (start, pause, stop, analyze)", action);
        return;
    }
    transition(req, data, action);
}

static void handle_experiment_delete(struct ab_http_req *req, void *data)
{
    transition(req, data, "archive");
}

/* ---------------------------------------------------------------- metrics and layers */

typedef enum ab_err (*create_fn)(struct ab_db *db, const json_t *e, const struct web_actor *who,
                                 int64_t now, json_t **out, struct ab_errinfo *ei);
typedef enum ab_err (*validate_fn)(const json_t *in, json_t **out, struct ab_errinfo *ei);

static void create_entity(struct ab_http_req *req, struct web *w, validate_fn validate,
                          create_fn create)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_EDITOR);
    int failed;
    json_t *body = db != NULL ? read_body(req, 0, &failed) : NULL;
    if (body == NULL)
        return;
    json_t *norm = NULL, *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = validate(body, &norm, &ei);
    if (rc == AB_OK)
        rc = create(db, norm, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK)
        web_changed(w);
    send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

static void handle_metric_create(struct ab_http_req *req, void *data)
{
    create_entity(req, data, web_validate_metric, web_store_metric_create);
}

static void handle_layer_create(struct ab_http_req *req, void *data)
{
    create_entity(req, data, web_validate_layer, web_store_layer_create);
}

/* A read of the whole collection (list) or of one entity by its {key} (get), for role and up. */
typedef enum ab_err (*list_fn)(struct ab_db *db, json_t **out, struct ab_errinfo *ei);
typedef enum ab_err (*get_fn)(struct ab_db *db, const char *key, json_t **out,
                              struct ab_errinfo *ei);

static void read_list(struct ab_http_req *req, struct web *w, enum web_role role, list_fn list)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, role);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = list(db, &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

static void read_one(struct ab_http_req *req, struct web *w, get_fn get)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = get(db, ab_http_param(req, "key"), &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

static void handle_metric_list(struct ab_http_req *req, void *data)
{
    read_list(req, data, WEB_ROLE_VIEWER, web_store_metric_list);
}

static void handle_metric_get(struct ab_http_req *req, void *data)
{
    read_one(req, data, web_store_metric_get);
}

static void handle_layer_list(struct ab_http_req *req, void *data)
{
    read_list(req, data, WEB_ROLE_VIEWER, web_store_layer_list);
}

static void handle_layer_get(struct ab_http_req *req, void *data)
{
    read_one(req, data, web_store_layer_get);
}

/* ---------------------------------------------------------------- API keys */

static void create_key(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    int failed;
    json_t *body = read_body(req, 1, &failed);
    if (failed)
        return;
    json_t *norm = NULL, *out = NULL;
    struct ab_errinfo ei;
    char key[80], prefix[16], hash[65];
    enum ab_err rc = web_validate_key_request(body, &norm, &ei);
    if (rc == AB_OK) {
        web_key_generate(kind, key, prefix, hash);
        rc = web_store_key_create(db, kind, json_string_value(json_object_get(norm, "name")),
                                  prefix, hash, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    }
    if (rc == AB_OK) {
        json_object_set_new(out, "key", json_string(key)); /* shown once, never stored */
        web_changed(w);
    }
    send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

static void list_keys(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_key_list(db, kind, &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

static void revoke_key(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    const char *text = ab_http_param(req, "id");
    char *end;
    errno = 0;
    long long id = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || id <= 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "id", "no %s key %.40s", kind, text);
        return;
    }
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        web_store_key_revoke(db, kind, id, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK)
        web_changed(w); /* the next snapshot leaves the key out */
    send_result(req, rc, 200, out, &ei);
}

static void handle_client_key_revoke(struct ab_http_req *req, void *data)
{
    revoke_key(req, data, "client");
}

static void handle_ingest_key_revoke(struct ab_http_req *req, void *data)
{
    revoke_key(req, data, "ingest");
}

static void handle_client_key_create(struct ab_http_req *req, void *data)
{
    create_key(req, data, "client");
}

static void handle_ingest_key_create(struct ab_http_req *req, void *data)
{
    create_key(req, data, "ingest");
}

static void handle_client_key_list(struct ab_http_req *req, void *data)
{
    list_keys(req, data, "client");
}

static void handle_ingest_key_list(struct ab_http_req *req, void *data)
{
    list_keys(req, data, "ingest");
}

/* ---------------------------------------------------------------- sessions and users */

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
    json_t *body = read_body(req, 0, &failed);
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

/* GET /api/v1/session: who is logged in (401 when nobody), with the CSRF token. */
static void handle_session_get(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    ab_http_add_header(req, "Cache-Control", "no-store");
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_session s;
    memset(&s, 0, sizeof(s));
    int found = 0;
    enum ab_err rc = db != NULL ? session_of(req, w, db, &s, &found, &ei) : AB_ERR_UNAVAILABLE;
    if (rc != AB_OK)
        ab_http_send_errinfo(req, rc, &ei);
    else if (!found)
        ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "session", "not logged in");
    else
        send_session(req, 200, &s.user, s.csrf, w);
}

/* DELETE /api/v1/session (with the CSRF token): logs out, ending the session server-side. */
static void handle_logout(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    ab_http_add_header(req, "Cache-Control", "no-store");
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_session s;
    memset(&s, 0, sizeof(s));
    int found = 0;
    enum ab_err rc = db != NULL ? session_of(req, w, db, &s, &found, &ei) : AB_ERR_UNAVAILABLE;
    if (rc == AB_OK && !found)
        rc = ab_fail(&ei, AB_ERR_UNAUTHORIZED, "session", "not logged in");
    else if (rc == AB_OK && !csrf_ok(req, &s))
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
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_ADMIN);
    int failed;
    json_t *body = db != NULL ? read_body(req, 0, &failed) : NULL;
    if (body == NULL)
        return;
    json_t *norm = NULL, *out = NULL;
    struct ab_errinfo ei;
    char hash[WEB_HASH_MAX];
    enum ab_err rc = web_validate_user(body, &norm, &ei);
    if (rc == AB_OK)
        rc = web_password_hash(json_string_value(json_object_get(norm, "password")), hash, &ei);
    if (rc == AB_OK)
        rc = web_store_user_create(db, norm, hash, &who, ab_clock_now_ms(w->cfg.clock), &out,
                                   &ei);
    send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

static void handle_user_list(struct ab_http_req *req, void *data)
{
    read_list(req, data, WEB_ROLE_ADMIN, web_store_user_list);
}

static void handle_user_disable(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    const char *text = ab_http_param(req, "id");
    char *end;
    errno = 0;
    long long id = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || id <= 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "id", "no user %.40s", text);
        return;
    }
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        web_store_user_disable(db, id, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

/* ---------------------------------------------------------------- audit log */

static void handle_audit(struct ab_http_req *req, void *data)
{
    struct web_actor who;
    struct ab_db *db = begin(req, data, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    const struct ab_url_query *q = ab_http_query(req);
    int bad = 0;
    int64_t limit = param_int(req, "limit", 100, 1000, &bad);
    int64_t before = bad ? 0 : param_int(req, "before", 0, INT64_MAX / 2, &bad);
    if (bad)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_audit_list(db, ab_url_query_get(q, "entity_type"),
                                          ab_url_query_get(q, "entity_key"), before, limit, &out,
                                          &ei);
    send_result(req, rc, 200, out, &ei);
}

/* ---------------------------------------------------------------- snapshots */

/* The manifest of DESIGN.md section 5: version, sha256, size, url. */
static json_t *manifest(const struct web_snapshot_row *r)
{
    char url[64];
    snprintf(url, sizeof(url), "/v1/snapshots/%lld.db", (long long)r->version);
    return json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t)r->version, "sha256",
                     r->sha256, "size", (json_int_t)r->size, "url", url);
}

static void handle_publish(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_EDITOR);
    if (db == NULL)
        return;
    struct web_snapshot_row row = {0};
    struct ab_errinfo ei;
    enum ab_err rc = web_publish(w, db, &who, &row, &ei);
    json_t *out = NULL;
    if (rc == AB_OK) {
        out = manifest(&row);
        json_object_set_new(out, "created_at", json_integer(row.created_at));
    }
    send_result(req, rc, 201, out, &ei);
}

static void handle_snapshot_list(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_snapshot_list(w, db, &out, &ei);
    send_result(req, rc, 200, out, &ei);
}

/* 1 when the request's If-None-Match names etag (or is *). */
static int not_modified(struct ab_http_req *req, const char *etag)
{
    size_t len = 0;
    const char *inm = ab_http_header(req, "if-none-match", &len);
    if (inm == NULL)
        return 0;
    return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

static void handle_manifest(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_snapshot_row row = {0};
    int found = 0;
    enum ab_err rc = db != NULL ? web_snapshot_latest(db, &row, &found, &ei) : AB_ERR_UNAVAILABLE;
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    if (!found) {
        ab_http_add_header(req, "Retry-After", "1");
        ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "nothing published yet");
        return;
    }
    char etag[48], cc[64];
    snprintf(etag, sizeof(etag), "\"%lld-%.16s\"", (long long)row.version, row.sha256);
    if (w->cfg.manifest_max_age_s > 0)
        snprintf(cc, sizeof(cc), "public, max-age=%d", w->cfg.manifest_max_age_s);
    else
        snprintf(cc, sizeof(cc), "no-cache");
    ab_http_add_header(req, "ETag", etag);
    ab_http_add_header(req, "Cache-Control", cc);
    if (not_modified(req, etag)) {
        ab_http_send(req, 304, "application/json", "", 0);
        return;
    }
    ab_http_send_json(req, 200, manifest(&row));
}

/* Parses "<version>.db" (a positive decimal without leading zeros). */
static int parse_file_name(const char *name, int64_t *version)
{
    size_t n = strlen(name);
    if (n < 4 || n > 22 || strcmp(name + n - 3, ".db") != 0 || name[0] < '1' || name[0] > '9')
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n - 3; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    *version = v;
    return 0;
}

static void handle_snapshot_file(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    int64_t version = 0;
    if (parse_file_name(ab_http_param(req, "file"), &version) != 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "version", "no such snapshot file");
        return;
    }
    struct ab_errinfo ei;
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_snapshot_row row = {0};
    int found = 0;
    enum ab_err rc = db != NULL ? web_snapshot_get(db, version, &row, &found, &ei)
                                : AB_ERR_UNAVAILABLE;
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", w->data_dir, row.path);
    int fd = found ? open(full, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "version",
                           found ? "snapshot %lld is no longer kept" : "no snapshot %lld",
                           (long long)version);
        return;
    }
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%s\"", row.sha256);
    ab_http_add_header(req, "ETag", etag);
    ab_http_add_header(req, "Cache-Control", "public, max-age=31536000, immutable");
    if (not_modified(req, etag)) {
        close(fd);
        ab_http_send(req, 304, "application/vnd.sqlite3", "", 0);
        return;
    }
    struct stat st;
    char *buf = NULL;
    int ok = fstat(fd, &st) == 0 && st.st_size == row.size && row.size <= SNAPSHOT_FILE_MAX;
    if (ok) {
        buf = ab_mem_calloc(1, (size_t)row.size + 1);
        size_t got = 0;
        while (got < (size_t)row.size) {
            ssize_t r = read(fd, buf + got, (size_t)row.size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        ok = got == (size_t)row.size;
    }
    close(fd);
    if (!ok)
        ab_http_send_error(req, AB_ERR_IO, NULL, "snapshot %lld cannot be read whole",
                           (long long)version);
    else
        ab_http_send(req, 200, "application/vnd.sqlite3", buf, (size_t)row.size);
    free(buf);
}

/* ---------------------------------------------------------------- mounting */

static void metrics_cb(void *data, FILE *out)
{
    struct web *w = data;
    fprintf(out,
            "# HELP abacus_publisher_version Newest snapshot version this control plane "
            "published.\n# TYPE abacus_publisher_version gauge\nabacus_publisher_version %lld\n"
            "# HELP abacus_publisher_publishes_total Snapshots published.\n"
            "# TYPE abacus_publisher_publishes_total counter\n"
            "abacus_publisher_publishes_total %llu\n"
            "# HELP abacus_publisher_failures_total Publishes that failed.\n"
            "# TYPE abacus_publisher_failures_total counter\n"
            "abacus_publisher_failures_total %llu\n",
            (long long)atomic_load(&w->published_version),
            (unsigned long long)atomic_load(&w->publishes),
            (unsigned long long)atomic_load(&w->publish_failures));
}

enum ab_err web_api_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct {
        const char *method, *pattern;
        ab_http_handler_cb cb;
        size_t max_body;
    } ROUTES[] = {
        {"GET", "/api/v1/experiments", handle_experiment_list, 0},
        {"POST", "/api/v1/experiments", handle_experiment_create, WEB_BODY_MAX},
        {"GET", "/api/v1/experiments/{key}", handle_experiment_get, 0},
        {"PUT", "/api/v1/experiments/{key}", handle_experiment_put, WEB_BODY_MAX},
        {"DELETE", "/api/v1/experiments/{key}", handle_experiment_delete, 0},
        {"POST", "/api/v1/experiments/{key}/{action}", handle_experiment_action, 0},
        {"GET", "/api/v1/experiments/{key}/results", handle_results, 0},
        {"GET", "/api/v1/metrics", handle_metric_list, 0},
        {"POST", "/api/v1/metrics", handle_metric_create, 0},
        {"GET", "/api/v1/metrics/{key}", handle_metric_get, 0},
        {"GET", "/api/v1/layers", handle_layer_list, 0},
        {"POST", "/api/v1/layers", handle_layer_create, 0},
        {"GET", "/api/v1/layers/{key}", handle_layer_get, 0},
        {"GET", "/api/v1/client-keys", handle_client_key_list, 0},
        {"POST", "/api/v1/client-keys", handle_client_key_create, 0},
        {"DELETE", "/api/v1/client-keys/{id}", handle_client_key_revoke, 0},
        {"GET", "/api/v1/ingest-keys", handle_ingest_key_list, 0},
        {"POST", "/api/v1/ingest-keys", handle_ingest_key_create, 0},
        {"DELETE", "/api/v1/ingest-keys/{id}", handle_ingest_key_revoke, 0},
        {"GET", "/api/v1/audit", handle_audit, 0},
        {"GET", "/api/v1/snapshots", handle_snapshot_list, 0},
        {"POST", "/api/v1/snapshots", handle_publish, 0},
        {"POST", "/api/v1/session", handle_login, 0},
        {"GET", "/api/v1/session", handle_session_get, 0},
        {"DELETE", "/api/v1/session", handle_logout, 0},
        {"GET", "/api/v1/users", handle_user_list, 0},
        {"POST", "/api/v1/users", handle_user_create, 0},
        {"DELETE", "/api/v1/users/{id}", handle_user_disable, 0},
        {"GET", "/v1/snapshots/latest", handle_manifest, 0},
        {"GET", "/v1/snapshots/{file}", handle_snapshot_file, 0},
    };
    w->ndbs = ab_http_server_threads(srv);
    w->dbs = ab_mem_calloc((size_t)w->ndbs, sizeof(struct ab_db *));
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        enum ab_err rc = ab_http_route(srv, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].cb, w,
                                       ROUTES[i].max_body, ei);
        if (rc != AB_OK)
            return rc;
    }
    ab_http_add_metrics(srv, metrics_cb, w);
    enum ab_err rc = web_reports_mount(w, srv, ei);
    return rc != AB_OK ? rc : web_static_mount(w, srv, ei);
}

enum ab_err web_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    return web_api_mount(w, srv, ei);
}
