/*
 * Serves the browser UI: the files of web/static/ compiled into the binary (web_static_files),
 * GET / as index.html and GET /static/<path> for the rest. Every answer carries the security
 * headers (a Content-Security-Policy without 'unsafe-inline', nosniff, no framing) and an ETag
 * with Cache-Control no-cache, so a browser revalidates (304) and never runs a stale UI. The UI
 * itself talks to the admin API only.
 */
#include <string.h>
#include "web_int.h"

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "             \
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "                   \
    "frame-ancestors 'none'"

static void security_headers(struct ab_http_req *req)
{
    ab_http_add_header(req, "Content-Security-Policy", CSP);
    ab_http_add_header(req, "X-Content-Type-Options", "nosniff");
    ab_http_add_header(req, "X-Frame-Options", "DENY");
    ab_http_add_header(req, "Referrer-Policy", "no-referrer");
    ab_http_add_header(req, "Cross-Origin-Opener-Policy", "same-origin");
}

static void handle_file(struct ab_http_req *req, void *data)
{
    const struct web_static_file *f = data;
    security_headers(req);
    ab_http_add_header(req, "ETag", f->etag);
    ab_http_add_header(req, "Cache-Control", "no-cache");
    size_t len = 0;
    const char *inm = ab_http_header(req, "if-none-match", &len);
    if (inm != NULL && strstr(inm, f->etag) != NULL) {
        ab_http_send(req, 304, f->content_type, "", 0);
        return;
    }
    ab_http_send(req, 200, f->content_type, f->data, f->len);
}

enum ab_err web_static_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    (void)w;
    for (size_t i = 0; i < web_static_files_count; i++) {
        const struct web_static_file *f = &web_static_files[i];
        enum ab_err rc = ab_http_route(srv, "GET", f->path, handle_file, (void *)f, 0, ei);
        if (rc == AB_OK && strcmp(f->path, "/static/index.html") == 0)
            rc = ab_http_route(srv, "GET", "/", handle_file, (void *)f, 0, ei);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}
