/*
 * The routes of API keys, for admins: client keys (the SDKs' /api/features and /api/eval) and
 * ingest keys (the collectors' write keys) are created (the secret is shown once), listed and
 * revoked; each change is published, so the next snapshot carries the live keys.
 */
#include <stdio.h>
#include "api.h"

static void create_key(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    int failed;
    json_t *body = web_read_body(req, 1, &failed);
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
    web_send_result(req, rc, 201, out, &ei);
    json_decref(norm);
    json_decref(body);
}

static void list_keys(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_store_key_list(db, kind, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

static void revoke_key(struct ab_http_req *req, struct web *w, const char *kind)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_ADMIN);
    if (db == NULL)
        return;
    char what[32];
    snprintf(what, sizeof(what), "%s key", kind);
    int64_t id = 0;
    if (web_param_id(req, what, &id) != 0)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        web_store_key_revoke(db, kind, id, &who, ab_clock_now_ms(w->cfg.clock), &out, &ei);
    if (rc == AB_OK)
        web_changed(w); /* the next snapshot leaves the key out */
    web_send_result(req, rc, 200, out, &ei);
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

enum ab_err web_key_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {
        {"GET", "/api/v1/client-keys", handle_client_key_list, 0},
        {"POST", "/api/v1/client-keys", handle_client_key_create, 0},
        {"DELETE", "/api/v1/client-keys/{id}", handle_client_key_revoke, 0},
        {"GET", "/api/v1/ingest-keys", handle_ingest_key_list, 0},
        {"POST", "/api/v1/ingest-keys", handle_ingest_key_create, 0},
        {"DELETE", "/api/v1/ingest-keys/{id}", handle_ingest_key_revoke, 0},
    };
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
