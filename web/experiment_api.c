/*
 * The experiments' routes: the list with its filters, creation, reads with the version as ETag,
 * the update based on a version (If-Match or the body's version; 409 with the current version
 * when it moved), the status actions (start, pause, stop; DELETE archives) and the results, stored
 * or recomputed by the analysis the server was given.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "api.h"

static void set_etag_version(struct ab_http_req *req, const json_t *exp)
{
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%lld\"",
             (long long)json_integer_value(json_object_get(exp, "version")));
    ab_http_add_header(req, "ETag", etag);
}

static void handle_experiment_list(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_VIEWER);
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
    f.limit = web_param_int(req, "limit", 100, 1000, &bad);
    if (!bad)
        f.offset = web_param_int(req, "offset", 0, INT64_MAX / 2, &bad);
    if (bad)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_list(db, &f, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

static void handle_experiment_create(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = NULL;
    json_t *body = web_begin_body(req, w, &who, WEB_ROLE_EDITOR, &db);
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
        rc = web_store_experiment_create(db, exp, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK) {
        web_changed(w);
        set_etag_version(req, out);
    }
    web_send_result(req, rc, 201, out, &ei);
    json_decref(exp);
    json_decref(body);
}

static void handle_experiment_get(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_experiment_get(db, ab_http_param(req, "key"), &out, &ei);
    if (rc == AB_OK)
        set_etag_version(req, out);
    web_send_result(req, rc, 200, out, &ei);
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
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, "version", "differs from If-Match");
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
    struct ab_db *db = NULL;
    json_t *body = web_begin_body(req, w, &who, WEB_ROLE_EDITOR, &db);
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
    enum ab_err rc =
        web_store_experiment_update(db, ab_http_param(req, "key"), version, body, &who,
                                    ab_clock_now_ms(w->cfg.clock), &out, &current, &ei);
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
        web_send_result(req, rc, 200, out, &ei);
    }
    json_decref(body);
}

static void transition(struct ab_http_req *req, struct web *w, const char *action)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_EDITOR);
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
    web_send_result(req, rc, 200, out, &ei);
}

/* "2026-12-07T10:00:00Z" or ms since the epoch -> ms; -1 when neither. */
static int64_t parse_as_of(const char *s)
{
    char *end;
    errno = 0;
    long long ms = strtoll(s, &end, 10);
    if (errno == 0 && end != s && *end == '\0' && ms > 0)
        return ms;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL || (strcmp(rest, "Z") != 0 && strcmp(rest, "") != 0))
        return -1;
    return (int64_t)timegm(&tm) * 1000 + 999; /* the whole second */
}

/*
 * The results from the analysis: stored (GET .../results, ?as_of= for an earlier computation),
 * recomputed (POST .../analyze) or the list of kept computations (GET .../results/history).
 */
static void results(struct ab_http_req *req, struct web *w, enum web_results_ask ask)
{
    struct web_actor who;
    if (web_begin(req, w, &who,
                  ask == WEB_RESULTS_RECOMPUTE ? WEB_ROLE_EDITOR : WEB_ROLE_VIEWER) == NULL)
        return;
    if (w->cfg.results == NULL) {
        ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "this server does not analyse results");
        return;
    }
    int64_t as_of = 0;
    const char *a = ab_url_query_get(ab_http_query(req), "as_of");
    if (a != NULL && ask == WEB_RESULTS_STORED && (as_of = parse_as_of(a)) < 0) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "as_of",
                           "must be a time such as 2026-12-07T10:00:00Z, or ms since the epoch");
        return;
    }
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        w->cfg.results(w->cfg.results_data, ab_http_param(req, "key"), ask, as_of, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

static void handle_results(struct ab_http_req *req, void *data)
{
    results(req, data, WEB_RESULTS_STORED);
}

static void handle_results_history(struct ab_http_req *req, void *data)
{
    results(req, data, WEB_RESULTS_HISTORY);
}

static void handle_experiment_action(struct ab_http_req *req, void *data)
{
    const char *action = ab_http_param(req, "action");
    if (strcmp(action, "analyze") == 0) {
        results(req, data, WEB_RESULTS_RECOMPUTE);
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

enum ab_err web_experiment_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {
        {"GET", "/api/v1/experiments", handle_experiment_list, 0},
        {"POST", "/api/v1/experiments", handle_experiment_create, WEB_BODY_MAX},
        {"GET", "/api/v1/experiments/{key}", handle_experiment_get, 0},
        {"PUT", "/api/v1/experiments/{key}", handle_experiment_put, WEB_BODY_MAX},
        {"DELETE", "/api/v1/experiments/{key}", handle_experiment_delete, 0},
        {"POST", "/api/v1/experiments/{key}/{action}", handle_experiment_action, 0},
        {"GET", "/api/v1/experiments/{key}/results", handle_results, 0},
        {"GET", "/api/v1/experiments/{key}/results/history", handle_results_history, 0},
    };
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
