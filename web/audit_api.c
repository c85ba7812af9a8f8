/*
 * GET /api/v1/audit: the audit log for viewers, newest first, filtered by entity type and key,
 * paged by id (before) and limit.
 */
#include <stdint.h>
#include "api.h"

static void handle_audit(struct ab_http_req *req, void *data)
{
    struct web_actor who;
    struct ab_db *db = web_begin(req, data, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    const struct ab_url_query *q = ab_http_query(req);
    int bad = 0;
    int64_t limit = web_param_int(req, "limit", 100, 1000, &bad);
    int64_t before = bad ? 0 : web_param_int(req, "before", 0, INT64_MAX / 2, &bad);
    if (bad)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        web_store_audit_list(db, ab_url_query_get(q, "entity_type"),
                             ab_url_query_get(q, "entity_key"), before, limit, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

enum ab_err web_audit_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {{"GET", "/api/v1/audit", handle_audit, 0}};
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
