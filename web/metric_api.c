/*
 * The routes of metrics and layers: creation by editors, the lists and reads by key.
 */
#include "api.h"

static void handle_metric_create(struct ab_http_req *req, void *data)
{
    web_create_entity(req, data, web_validate_metric, web_store_metric_create);
}

static void handle_layer_create(struct ab_http_req *req, void *data)
{
    web_create_entity(req, data, web_validate_layer, web_store_layer_create);
}

static void handle_metric_list(struct ab_http_req *req, void *data)
{
    web_read_list(req, data, WEB_ROLE_VIEWER, web_store_metric_list);
}

static void handle_metric_get(struct ab_http_req *req, void *data)
{
    web_read_one(req, data, web_store_metric_get);
}

static void handle_layer_list(struct ab_http_req *req, void *data)
{
    web_read_list(req, data, WEB_ROLE_VIEWER, web_store_layer_list);
}

static void handle_layer_get(struct ab_http_req *req, void *data)
{
    web_read_one(req, data, web_store_layer_get);
}

enum ab_err web_metric_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {
        {"GET", "/api/v1/metrics", handle_metric_list, 0},
        {"POST", "/api/v1/metrics", handle_metric_create, 0},
        {"GET", "/api/v1/metrics/{key}", handle_metric_get, 0},
        {"GET", "/api/v1/layers", handle_layer_list, 0},
        {"POST", "/api/v1/layers", handle_layer_create, 0},
        {"GET", "/api/v1/layers/{key}", handle_layer_get, 0},
    };
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
