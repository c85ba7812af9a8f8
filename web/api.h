/*
 * The steps every API part of the control plane shares (api.c). An API part is the HTTP glue of
 * one entity: experiment_api.c, metric_api.c (metrics and layers), key_api.c, user_api.c (users
 * and sessions), audit_api.c, snapshot_api.c and report_api.c. A handler authenticates
 * (web_begin), reads its body (web_read_body), calls the validator and its store part on the
 * worker thread's own connection, signals a committed change that reaches the snapshot
 * (web_changed) and answers (web_send_result). Documented in docs/admin-api.md.
 */
#ifndef ABACUS_WEB_API_H
#define ABACUS_WEB_API_H

#include "abacus/http.h"
#include "web_int.h"

/*
 * Authenticates the request and finds the thread's connection; answers itself on failure (401
 * without credentials, 403 without the CSRF token or below the role need) and returns NULL.
 * Credentials: an admin API key as a Bearer token (acts as an admin), or a session cookie, with
 * the session's CSRF token in X-CSRF-Token on every state change. who gets "key:<prefix>" or
 * "user:<email>".
 */
struct ab_db *web_begin(struct ab_http_req *req, struct web *w, struct web_actor *who,
                        enum web_role need);

/*
 * The request's live session from its cookie; *found 0 when there is none (no cookie, unknown,
 * ended, idle or too old). Errors only for the database.
 */
enum ab_err web_session_of(struct ab_http_req *req, struct web *w, struct ab_db *db,
                           struct web_session *s, int *found, struct ab_errinfo *ei);

/* 1 when the request carries the session's CSRF token as X-CSRF-Token. */
int web_csrf_ok(struct ab_http_req *req, const struct web_session *s);

/*
 * The JSON object of the body (lib/http's check: 415, 400 or 413 answered here, *failed 1, NULL
 * returned). An empty body is NULL without an answer when allow_empty.
 */
json_t *web_read_body(struct ab_http_req *req, int allow_empty, int *failed);

/* web_begin, then the JSON object of the body (required) with *db set; NULL once either has
 * answered. */
json_t *web_begin_body(struct ab_http_req *req, struct web *w, struct web_actor *who,
                       enum web_role need, struct ab_db **db);

/* Answers out with status (out is taken), or the error of rc and ei. */
void web_send_result(struct ab_http_req *req, enum ab_err rc, int status, json_t *out,
                     const struct ab_errinfo *ei);

/* Query parameter name as an integer from 0 to max (dflt when absent); otherwise a 400 is
 * answered and *bad set. */
int64_t web_param_int(struct ab_http_req *req, const char *name, int64_t dflt, int64_t max,
                      int *bad);

/* The path parameter {id} as a positive integer; otherwise 404 "no <what> <id>" is answered and
 * -1 returned. */
int web_param_id(struct ab_http_req *req, const char *what, int64_t *id);

typedef enum ab_err (*web_list_fn)(struct ab_db *db, json_t **out, struct ab_errinfo *ei);
typedef enum ab_err (*web_get_fn)(struct ab_db *db, const char *key, json_t **out,
                                  struct ab_errinfo *ei);
typedef enum ab_err (*web_validate_fn)(const json_t *in, json_t **out, struct ab_errinfo *ei);
typedef enum ab_err (*web_create_fn)(struct ab_db *db, const json_t *e, const struct web_actor *who,
                                     int64_t now, json_t **out, struct ab_errinfo *ei);

/* GET of a whole collection (for role and up) and of one entity by its {key} (viewers). */
void web_read_list(struct ab_http_req *req, struct web *w, enum web_role role, web_list_fn list);
void web_read_one(struct ab_http_req *req, struct web *w, web_get_fn get);

/* POST of a new entity by an editor: validated, created, published; 201 with the entity. */
void web_create_entity(struct ab_http_req *req, struct web *w, web_validate_fn validate,
                       web_create_fn create);

/* A route of an API part; max_body 0 takes the server's limit. */
struct web_route {
    const char *method, *pattern;
    ab_http_handler_cb cb;
    size_t max_body;
};

/* Registers n routes with w as their data. */
enum ab_err web_routes_mount(struct web *w, struct ab_http_server *srv,
                             const struct web_route *routes, size_t n, struct ab_errinfo *ei);

#define WEB_ROUTES_MOUNT(w, srv, routes, ei)                                                       \
    web_routes_mount((w), (srv), (routes), sizeof(routes) / sizeof((routes)[0]), (ei))

#endif
