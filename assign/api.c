/*
 * The assign node's HTTP API (docs/design.md, "Assignment"): GET and POST /v1/assign,
 * /api/features/{clientKey} and /api/eval/{clientKey}. Thin glue: each handler reads and checks
 * its request, takes the current compiled snapshot from the holder (no lock, no SQLite), lets the
 * core evaluate (answer.c for /v1/assign, feature.c for /api/eval) and sends the answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/jsonw.h"
#include "assign_int.h"

#define ATTR_MAX 32 /* attributes in one GET request */
#define POST_BODY_MAX ((size_t)64 * 1024)
#define RESPONSE_MAX ((size_t)16 * 1024 * 1024) /* an answer larger than this is a 500 */

static const struct ab_json_limits POST_LIMITS = {POST_BODY_MAX, 16};

/* A writer for an answer of about size bytes, in the request's memory. */
static void answer_writer(struct ab_http_req *req, struct ab_jsonw *w, size_t size)
{
    size = size < RESPONSE_MAX ? size : RESPONSE_MAX;
    ab_jsonw_init_in(w, ab_http_alloc(req, size + 1), size, RESPONSE_MAX);
}

/* Sends what w holds, or a 500 when it outgrew its cap. Disposes w. */
static void send_written(struct ab_http_req *req, struct ab_jsonw *w)
{
    if (w->failed)
        ab_http_send_error(req, AB_ERR_INTERNAL, NULL, "the answer exceeds %zu bytes", w->max);
    else if (!w->owned) /* still in the request's memory */
        ab_http_send_kept(req, 200, "application/json", w->buf, w->len);
    else
        ab_http_send(req, 200, "application/json", w->buf, w->len);
    ab_jsonw_dispose(w);
}

static int not_ready(struct ab_http_req *req, const struct assign_snap *snap)
{
    if (snap != NULL)
        return 0;
    ab_http_add_header(req, "Retry-After", "1");
    ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "no snapshot loaded yet");
    return 1;
}

/* Reads experiment, unit and attr.NAME parameters; answers 400 itself on failure. */
static int read_get_params(struct ab_http_req *req, const char **experiment, const char **unit,
                           json_t *attrs)
{
    const struct ab_url_query *q = ab_http_query(req);
    *experiment = NULL;
    *unit = NULL;
    for (size_t i = 0; i < q->count; i++) {
        const struct ab_url_param *p = &q->params[i];
        int is_experiment = p->name_len == 10 && memcmp(p->name, "experiment", 10) == 0;
        int is_unit = p->name_len == 4 && memcmp(p->name, "unit", 4) == 0;
        const char **slot = is_experiment ? experiment : is_unit ? unit : NULL;
        if (slot != NULL) {
            if (*slot != NULL) {
                ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "must be given once");
                return -1;
            }
            *slot = p->value;
            continue;
        }
        if (p->name_len <= 5 || memcmp(p->name, "attr.", 5) != 0 ||
            (p->name_len == 7 && memcmp(p->name, "attr.id", 7) == 0)) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name,
                               "unknown parameter (use experiment, unit and attr.NAME; the "
                               "unit is the id attribute)");
            return -1;
        }
        if (json_object_get(attrs, p->name + 5) != NULL) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "must be given once");
            return -1;
        }
        if (json_object_size(attrs) >= ATTR_MAX) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "more than %d attributes",
                               ATTR_MAX);
            return -1;
        }
        json_object_set_new(attrs, p->name + 5, json_stringn(p->value, p->value_len));
    }
    const char *missing = *experiment == NULL ? "experiment" : *unit == NULL ? "unit" : NULL;
    if (missing != NULL) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, missing, "is required");
        return -1;
    }
    size_t ulen = strlen(*unit);
    if (ulen == 0 || ulen > ASSIGN_UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be 1 to %d bytes",
                           ASSIGN_UNIT_MAX);
        return -1;
    }
    json_object_set_new(attrs, "id", json_string(*unit));
    return 0;
}

static void handle_get_assign(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *attrs = json_object();
    const char *experiment, *unit;
    if (read_get_params(req, &experiment, &unit, attrs) != 0) {
        json_decref(attrs);
        return;
    }
    int slot = ab_http_thread(req);
    struct assign_snap *snap = ab_holder_acquire(&n->holder, slot);
    if (!not_ready(req, snap)) {
        const struct assign_entry *e = assign_snap_find(snap, experiment);
        if (e == NULL) {
            ab_http_send_error(req, AB_ERR_NOT_FOUND, "experiment", "no experiment %s", experiment);
        } else {
            struct assign_attrs index;
            assign_attrs_index(&index, attrs);
            size_t ulen = strlen(unit);
            struct ab_jsonw w;
            answer_writer(req, &w, assign_answer_size(1, ulen) + e->head.len + 256);
            assign_answer_get(&w, e, &index, unit, ulen);
            send_written(req, &w);
        }
    }
    ab_holder_release(&n->holder, slot);
    json_decref(attrs);
}

/* Validates a POST /v1/assign body; answers 400 itself and returns -1 on failure. */
static int check_post(struct ab_http_req *req, json_t *doc, const char **unit, json_t **attrs)
{
    const json_t *u = json_object_get(doc, "unit");
    size_t ulen = json_string_length(u);
    if (!json_is_string(u) || ulen == 0 || ulen > ASSIGN_UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be a string of 1 to %d bytes",
                           ASSIGN_UNIT_MAX);
        return -1;
    }
    const json_t *a = json_object_get(doc, "attributes");
    if (a != NULL && !json_is_object(a) && !json_is_null(a)) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "attributes", "must be an object");
        return -1;
    }
    const json_t *list = json_object_get(doc, "experiments");
    if (list != NULL && !json_is_null(list)) {
        size_t i;
        const json_t *k;
        if (!json_is_array(list)) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, "experiments",
                               "must be an array of experiment keys");
            return -1;
        }
        json_array_foreach(list, i, k) if (!json_is_string(k))
        {
            char field[48];
            snprintf(field, sizeof(field), "experiments[%zu]", i);
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, field, "must be a string");
            return -1;
        }
    }
    const char *known[] = {"unit", "attributes", "experiments"};
    const char *key;
    const json_t *v;
    json_object_foreach(doc, key, v)
    {
        size_t j = 0;
        while (j < 3 && strcmp(key, known[j]) != 0)
            j++;
        if (j == 3) {
            ab_http_send_error(req, AB_ERR_INVALID_FIELD, key, "unknown field");
            return -1;
        }
    }
    *unit = json_string_value(u);
    /* the body is ours: the unit becomes the id attribute in place */
    if (json_is_object(a)) {
        *attrs = json_incref((json_t *)a);
    } else {
        *attrs = json_object();
        json_object_set_new(doc, "attributes", json_incref(*attrs));
    }
    json_object_set(*attrs, "id", (json_t *)u);
    return 0;
}

/*
 * The entries of the experiments a POST lists (keys read without jansson, or a JSON array) into
 * out[n], in request memory; NULL with the 404 sent for a key the snapshot lacks.
 */
static const struct assign_entry **listed_entries(struct ab_http_req *req,
                                                  const struct assign_snap *snap,
                                                  const struct assign_key *keys,
                                                  const json_t *arr, size_t n)
{
    const struct assign_entry **out =
        ab_http_alloc(req, (n > 0 ? n : 1) * sizeof(const struct assign_entry *));
    for (size_t i = 0; i < n; i++) {
        struct assign_key k =
            keys != NULL ? keys[i]
                         : (struct assign_key){json_string_value(json_array_get(arr, i)),
                                               json_string_length(json_array_get(arr, i))};
        out[i] = assign_snap_findn(snap, k.p, k.len);
        if (out[i] == NULL) {
            char field[48];
            snprintf(field, sizeof(field), "experiments[%zu]", i);
            ab_http_send_error(req, AB_ERR_NOT_FOUND, field, "no experiment %.*s", (int)k.len,
                               k.p);
            return NULL;
        }
    }
    return out;
}

/* Evaluates and answers a POST; listed NULL: every running experiment. */
static void answer_post(struct ab_http_req *req, const struct assign_snap *snap,
                        const struct assign_attrs *index, const char *unit, size_t ulen,
                        const struct assign_entry *const *listed, size_t n)
{
    struct ab_jsonw w;
    answer_writer(req, &w, assign_answer_size(listed != NULL ? n : snap->nrunning, ulen));
    assign_answer_post(&w, snap, index, unit, ulen, listed, n);
    send_written(req, &w);
}

static void handle_post_assign(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    if (!ab_http_content_type_is(req, "application/json")) {
        ab_http_send_unsupported_media(req, "application/json");
        return;
    }
    size_t len;
    const char *body = ab_http_body(req, &len);
    int slot = ab_http_thread(req);
    struct assign_snap *snap = ab_holder_acquire(&n->holder, slot);
    /* the usual body needs no jansson; anything else, and every error, goes through jansson */
    struct assign_post post;
    if (snap != NULL && snap->scalar_attributes_ok && len <= POST_BODY_MAX &&
        assign_post_read(body, len, ASSIGN_UNIT_MAX, &post)) {
        const struct assign_entry **listed =
            post.has_list ? listed_entries(req, snap, post.keys, NULL, post.nkeys) : NULL;
        if (!post.has_list || listed != NULL)
            answer_post(req, snap, &post.attrs, post.unit, post.unit_len, listed, post.nkeys);
        ab_holder_release(&n->holder, slot);
        return;
    }
    json_t *doc = ab_http_json_object(req, &POST_LIMITS);
    const char *unit;
    json_t *attrs = NULL;
    if (doc != NULL && check_post(req, doc, &unit, &attrs) == 0 && !not_ready(req, snap)) {
        struct assign_attrs index;
        assign_attrs_index(&index, attrs);
        const json_t *arr = json_object_get(doc, "experiments");
        size_t count = json_array_size(arr);
        const struct assign_entry **listed =
            json_is_array(arr) ? listed_entries(req, snap, NULL, arr, count) : NULL;
        if (!json_is_array(arr) || listed != NULL)
            answer_post(req, snap, &index, unit, strlen(unit), listed, count);
    }
    ab_holder_release(&n->holder, slot);
    json_decref(attrs);
    json_decref(doc);
}

static int client_key_ok(struct ab_http_req *req, const struct assign_snap *snap)
{
    const char *key = ab_http_param(req, "clientKey");
    if (assign_snap_client_key_ok(snap, key))
        return 1;
    ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "clientKey", "unknown SDK client key");
    return 0;
}

static void handle_features(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    int slot = ab_http_thread(req);
    struct assign_snap *snap = ab_holder_acquire(&n->holder, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        ab_http_add_header(req, "ETag", snap->etag);
        ab_http_add_header(req, "Cache-Control", "public, max-age=5");
        const char *inm = ab_http_header(req, "if-none-match", NULL);
        if (inm != NULL && strstr(inm, snap->etag) != NULL)
            ab_http_send(req, 304, "application/json", "", 0);
        else
            ab_http_send(req, 200, "application/json", snap->features_body, snap->features_len);
    }
    ab_holder_release(&n->holder, slot);
}

static void handle_eval(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *doc = ab_http_json_object(req, &POST_LIMITS);
    if (doc == NULL)
        return;
    const json_t *attrs = json_object_get(doc, "attributes");
    const json_t *forced = json_object_get(doc, "forcedVariations");
    const json_t *url = json_object_get(doc, "url");
    if ((attrs != NULL && !json_is_object(attrs) && !json_is_null(attrs)) ||
        (forced != NULL && !json_is_object(forced) && !json_is_null(forced))) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD,
                           json_is_object(attrs) || attrs == NULL ? "forcedVariations"
                                                                  : "attributes",
                           "must be an object");
        json_decref(doc);
        return;
    }
    int slot = ab_http_thread(req);
    struct assign_snap *snap = ab_holder_acquire(&n->holder, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        struct assign_context ctx = {
            .attributes = json_is_object(attrs) ? attrs : NULL,
            .forced_variations = json_is_object(forced) ? forced : NULL,
            .url = json_is_string(url) && json_string_length(url) > 0 ? json_string_value(url)
                                                                     : NULL,
        };
        struct ab_jsonw w;
        answer_writer(req, &w, snap->features_len * 2);
        assign_features_write_remote(&w, snap->features, &ctx, snap->version);
        send_written(req, &w);
    }
    ab_holder_release(&n->holder, slot);
    json_decref(doc);
}

enum ab_err assign_api_mount(struct assign_node *n, struct ab_http_server *srv,
                             struct ab_errinfo *ei)
{
    enum ab_err rc;
    if ((rc = ab_http_route(srv, "GET", "/v1/assign", handle_get_assign, n, 0, ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/v1/assign", handle_post_assign, n, POST_BODY_MAX,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "GET", "/api/features/{clientKey}", handle_features, n, 0,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/api/eval/{clientKey}", handle_eval, n, POST_BODY_MAX,
                            ei)) != AB_OK)
        return rc;
    return AB_OK;
}
