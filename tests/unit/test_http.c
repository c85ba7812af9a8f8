/*
 * Tests of lib/http.c through real HTTP on 127.0.0.1: an in-process server on port 0 with test
 * routes, spoken to with raw sockets. Routing, parameters, limits, errors, metrics, readiness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "abacus/http.h"
#include "harness.h"

struct fixture {
    struct ab_http_server *srv;
    struct ab_log log;
    uint16_t port;
    int ready;
};

static void handle_item(struct ab_http_req *req, void *data)
{
    (void)data;
    json_t *doc = json_object();
    json_object_set_new(doc, "id", json_string(ab_http_param(req, "id")));
    const char *v = ab_url_query_get(ab_http_query(req), "v");
    json_object_set_new(doc, "v", v != NULL ? json_string(v) : json_null());
    ab_http_send_json(req, 200, doc);
}

static void handle_echo(struct ab_http_req *req, void *data)
{
    (void)data;
    size_t len;
    const char *body = ab_http_body(req, &len);
    ab_http_add_header(req, "X-Echo-Length", "yes");
    ab_http_send(req, 201, "application/octet-stream", body, len);
}

static void handle_fail(struct ab_http_req *req, void *data)
{
    (void)data;
    ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be %s", "a string");
}

static int ready_cb(void *data, char *reason, size_t len)
{
    struct fixture *f = data;
    if (!f->ready)
        snprintf(reason, len, "no snapshot loaded yet");
    return f->ready;
}

static void metrics_cb(void *data, FILE *out)
{
    (void)data;
    fputs("# TYPE test_extra gauge\ntest_extra 42\n", out);
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    ab_log_init(&f.log, AB_LOG_WARN, 2, &ab_clock_system);
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cfg.port = 0;
    cfg.threads = 2;
    cfg.log = &f.log;
    cfg.max_header_bytes = 4096;
    if (ab_http_server_new(&cfg, &f.srv, NULL) != AB_OK ||
        ab_http_route(f.srv, "GET", "/items/{id}", handle_item, NULL, 0, NULL) != AB_OK ||
        ab_http_route(f.srv, "DELETE", "/items/{id}", handle_item, NULL, 0, NULL) != AB_OK ||
        ab_http_route(f.srv, "POST", "/echo/small", handle_echo, NULL, 1024, NULL) != AB_OK ||
        ab_http_route(f.srv, "POST", "/echo/large", handle_echo, NULL, 256 * 1024, NULL) != AB_OK ||
        ab_http_route(f.srv, "GET", "/fail", handle_fail, NULL, 0, NULL) != AB_OK)
        return -1;
    ab_http_add_ready_check(f.srv, ready_cb, &f);
    ab_http_add_metrics(f.srv, metrics_cb, NULL);
    if (ab_http_server_start(f.srv, NULL) != AB_OK)
        return -1;
    f.port = ab_http_server_port(f.srv);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ab_http_server_stop(f->srv);
    ab_http_server_wait(f->srv);
    ab_http_server_free(f->srv);
    return 0;
}

/* Asserts r is a JSON error with the status and code. */
static void assert_error(struct http_response *r, int status, const char *code)
{
    assert_int_equal(r->status, status);
    char ct[64];
    assert_non_null(http_header(r, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_t *doc = json_loads(r->body, 0, NULL);
    assert_non_null(doc);
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_non_null(json_object_get(e, "field"));
    json_decref(doc);
}

static const char *field_of(struct http_response *r, char *buf, size_t len)
{
    json_t *doc = json_loads(r->body, 0, NULL);
    const char *f = json_string_value(json_object_get(json_object_get(doc, "error"), "field"));
    snprintf(buf, len, "%s", f != NULL ? f : "(null)");
    json_decref(doc);
    return buf;
}

static void test_route_params_and_query(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    assert_int_equal(http_do(f->port, "GET", "/items/a%20b?v=caf%C3%A9", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":\"a b\",\"v\":\"caf\xc3\xa9\"}");
    http_response_free(&r);
    assert_int_equal(http_do(f->port, "DELETE", "/items/7", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    char allow[128];
    http_do(f->port, "GET", "/nope", NULL, NULL, 0, &r);
    assert_error(&r, 404, "not_found");
    http_response_free(&r);
    http_do(f->port, "GET", "/items", NULL, NULL, 0, &r); /* a parameter segment cannot be empty */
    assert_error(&r, 404, "not_found");
    http_response_free(&r);
    http_do(f->port, "GET", "/items/1/extra", NULL, NULL, 0, &r);
    assert_error(&r, 404, "not_found");
    http_response_free(&r);
    http_do(f->port, "PUT", "/items/1", "application/json", "{}", 2, &r);
    assert_error(&r, 405, "method_not_allowed");
    assert_non_null(http_header(&r, "allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD, DELETE");
    http_response_free(&r);
    http_do(f->port, "HEAD", "/items/1", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
}

static void test_body_limit_per_route(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    char body[4096], fld[64];
    memset(body, 'x', sizeof(body));
    http_do(f->port, "POST", "/echo/small", "text/plain", body, 1024, &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.body_len, 1024);
    http_response_free(&r);
    http_do(f->port, "POST", "/echo/small", "text/plain", body, 1025, &r);
    assert_error(&r, 413, "payload_too_large");
    assert_string_equal(field_of(&r, fld, sizeof(fld)), "body");
    http_response_free(&r);
    http_do(f->port, "POST", "/echo/large", "text/plain", body, sizeof(body), &r);
    assert_int_equal(r.status, 201);
    http_response_free(&r);
    /* over every route's limit: libh2o refuses it before routing; still the JSON body */
    const char *huge = "POST /echo/large HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    http_raw(f->port, huge, strlen(huge), &r);
    assert_error(&r, 413, "payload_too_large");
    http_response_free(&r);
}

static void test_bad_query_and_params(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    char fld[64];
    const char *bad[] = {"/items/1?v=%zz", "/items/1?v=a%00b", "/items/1?v=%ff", "/items/1?=x",
                         "/items/%zz", "/items/%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_do(f->port, "GET", bad[i], NULL, NULL, 0, &r);
        assert_error(&r, 400, "bad_request");
        http_response_free(&r);
    }
    http_do(f->port, "GET", "/items/1?v=%zz", NULL, NULL, 0, &r);
    assert_string_equal(field_of(&r, fld, sizeof(fld)), "v");
    http_response_free(&r);
    http_do(f->port, "GET", "/items/%ff", NULL, NULL, 0, &r);
    assert_string_equal(field_of(&r, fld, sizeof(fld)), "id");
    http_response_free(&r);
}

static void test_header_limit(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    char req[8192];
    char pad[5000];
    memset(pad, 'a', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(req, sizeof(req), "GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", pad);
    http_raw(f->port, req, strlen(req), &r);
    assert_error(&r, 431, "headers_too_large");
    http_response_free(&r);
}

static void test_handler_error_and_readiness(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    char fld[64];
    http_do(f->port, "GET", "/fail", NULL, NULL, 0, &r);
    assert_error(&r, 400, "invalid_field");
    assert_string_equal(field_of(&r, fld, sizeof(fld)), "unit");
    http_response_free(&r);
    http_do(f->port, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_error(&r, 503, "unavailable");
    assert_non_null(strstr(r.body, "no snapshot loaded yet"));
    http_response_free(&r);
    f->ready = 1;
    http_do(f->port, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    f->ready = 0;
}

static void test_keepalive(void **state)
{
    struct fixture *f = *state;
    int fd = http_connect(f->port);
    assert_true(fd >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        struct http_response r;
        assert_int_equal(http_read_response(fd, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"status\":\"ok\"}");
        http_response_free(&r);
    }
    close(fd);
}

static void test_metrics(void **state)
{
    struct fixture *f = *state;
    struct http_response r;
    for (int i = 0; i < 3; i++) {
        http_do(f->port, "GET", "/items/x", NULL, NULL, 0, &r);
        http_response_free(&r);
    }
    http_do(f->port, "GET", "/missing", NULL, NULL, 0, &r);
    http_response_free(&r);
    http_do(f->port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    char ct[64];
    http_header(&r, "content-type", ct, sizeof(ct));
    assert_non_null(strstr(ct, "text/plain"));
    /* this fixture's server is fresh: exact counts */
    assert_non_null(strstr(r.body, "abacus_http_requests_total{route=\"/items/{id}\",status=\"200\"} 3\n"));
    assert_non_null(strstr(r.body, "abacus_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "abacus_http_request_duration_seconds_bucket{route=\"/items/{id}\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(r.body, "abacus_http_request_duration_seconds_count{route=\"/items/{id}\"} 3\n"));
    assert_non_null(strstr(r.body, "# TYPE abacus_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(r.body, "test_extra 42\n"));
    http_response_free(&r);
}

static void test_route_registration_errors(void **state)
{
    struct fixture *f = *state;
    struct ab_errinfo ei;
    assert_int_equal(ab_http_route(f->srv, "GET", "/items/{id}", handle_item, NULL, 0, &ei),
                     AB_ERR_INTERNAL);
    assert_non_null(strstr(ei.message, "twice"));
    assert_int_equal(ab_http_route(f->srv, "GET", "no-slash", handle_item, NULL, 0, &ei),
                     AB_ERR_INTERNAL);
    assert_int_equal(ab_http_route(f->srv, "GET", "/a//b", handle_item, NULL, 0, &ei),
                     AB_ERR_INTERNAL);
    assert_int_equal(ab_http_route(f->srv, "GET", "/a/{}", handle_item, NULL, 0, &ei),
                     AB_ERR_INTERNAL);
}

static void test_port_in_use_refused(void **state)
{
    struct fixture *f = *state;
    struct ab_log log;
    ab_log_init(&log, AB_LOG_ERROR, 2, &ab_clock_system);
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cfg.port = f->port; /* taken by the fixture's server, which uses SO_REUSEPORT */
    cfg.threads = 1;
    cfg.log = &log;
    struct ab_http_server *second;
    struct ab_errinfo ei;
    assert_int_equal(ab_http_server_new(&cfg, &second, &ei), AB_OK);
    assert_int_equal(ab_http_server_start(second, &ei), AB_ERR_IO);
    assert_non_null(strstr(ei.message, "in use"));
    ab_http_server_free(second);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_route_params_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit_per_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_query_and_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_error_and_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_registration_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_port_in_use_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
