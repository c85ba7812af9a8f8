/*
 * Integration tests of `abacus up`: the real binary on 127.0.0.1 with a temp data dir, spoken to
 * over HTTP. What a user checks first: health, errors as JSON with the right status for each kind
 * of bad request, a server that survives all of them, metrics, and a clean stop on SIGTERM/SIGINT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "harness.h"

static int setup(void **state)
{
    static struct abacus_proc p;
    if (abacus_start(&p, NULL) != 0)
        return -1;
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct abacus_proc *p = *state;
    abacus_cleanup(p);
    return 0;
}

static void assert_json_error(struct http_response *r, int status, const char *code)
{
    assert_int_equal(r->status, status);
    char ct[64];
    assert_non_null(http_header(r, "content-type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_error_t jerr;
    json_t *doc = json_loads(r->body, 0, &jerr);
    assert_non_null(doc);
    json_t *e = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_true(strlen(json_string_value(json_object_get(e, "message"))) > 0);
    assert_non_null(json_object_get(e, "field"));
    json_decref(doc);
}

static void assert_healthy(struct abacus_proc *p)
{
    struct http_response r;
    assert_int_equal(http_do(p->port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    http_response_free(&r);
}

static void test_health_ready_and_data_dir(void **state)
{
    struct abacus_proc *p = *state;
    assert_healthy(p);
    struct http_response r;
    http_do(p->port, "GET", "/readyz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}");
    http_response_free(&r);
    /* the control database was created and migrated under the data dir */
    char path[512];
    snprintf(path, sizeof(path), "%s/data/abacus.db", p->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
}

static void test_bad_requests_get_json_errors(void **state)
{
    struct abacus_proc *p = *state;
    struct http_response r;

    http_do(p->port, "GET", "/no/such/path", NULL, NULL, 0, &r);
    assert_json_error(&r, 404, "not_found");
    http_response_free(&r);

    http_do(p->port, "POST", "/healthz", "application/json", "{}", 2, &r);
    assert_json_error(&r, 405, "method_not_allowed");
    char allow[64];
    assert_non_null(http_header(&r, "allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    http_response_free(&r);

    http_do(p->port, "GET", "/healthz?unit=%G1", NULL, NULL, 0, &r);
    assert_json_error(&r, 400, "bad_request");
    http_response_free(&r);
    http_do(p->port, "GET", "/healthz?unit=a%00", NULL, NULL, 0, &r);
    assert_json_error(&r, 400, "bad_request");
    http_response_free(&r);
    http_do(p->port, "GET", "/healthz?unit=%C3%28", NULL, NULL, 0, &r);
    assert_json_error(&r, 400, "bad_request");
    http_response_free(&r);

    /* a declared body over the limit is refused before it is read */
    const char *big = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n";
    http_raw(p->port, big, strlen(big), &r);
    assert_json_error(&r, 413, "payload_too_large");
    http_response_free(&r);

    /* a chunked body that grows over the limit is cut off at the limit (libh2o's, the largest
     * route limit: the collector's 512 KiB in abacus up) */
    size_t chunk = 8192, n = 80;
    char *raw = malloc(n * (chunk + 16) + 256);
    size_t len = (size_t)snprintf(raw, 256, "POST /healthz HTTP/1.1\r\nHost: x\r\n"
                                            "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(raw + len, 16, "%zx\r\n", chunk);
        memset(raw + len, 'x', chunk);
        len += chunk;
        memcpy(raw + len, "\r\n", 2);
        len += 2;
    }
    http_raw(p->port, raw, len, &r);
    free(raw);
    assert_json_error(&r, 413, "payload_too_large");
    http_response_free(&r);

    char *hdr = malloc(40000);
    int hl = snprintf(hdr, 40000, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hdr + hl, 'h', 30000);
    memcpy(hdr + hl + 30000, "\r\n\r\n", 5);
    http_raw(p->port, hdr, strlen(hdr), &r);
    free(hdr);
    assert_json_error(&r, 431, "headers_too_large");
    http_response_free(&r);

    /* garbage that is not HTTP at all: the connection is refused, the server lives on */
    const char *garbage = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n";
    http_raw(p->port, garbage, strlen(garbage), &r);
    http_response_free(&r);

    assert_healthy(p);
}

static void test_metrics_count_requests(void **state)
{
    struct abacus_proc *p = *state;
    struct http_response r;
    for (int i = 0; i < 5; i++)
        assert_healthy(p);
    http_do(p->port, "GET", "/nope", NULL, NULL, 0, &r);
    http_response_free(&r);
    http_do(p->port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "abacus_http_requests_total{route=\"/healthz\",status=\"200\"} 5\n"));
    assert_non_null(strstr(r.body, "abacus_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "abacus_http_request_duration_seconds_count{route=\"/healthz\"} 5\n"));
    assert_non_null(strstr(r.body, "abacus_http_threads 2\n"));
    http_response_free(&r);
}

static void test_sigterm_stops_cleanly_with_open_connection(void **state)
{
    struct abacus_proc *p = *state;
    int idle = http_connect(p->port); /* an idle keep-alive connection must not hold the stop */
    assert_true(idle >= 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(idle, req, strlen(req)), (ssize_t)strlen(req));
    struct http_response r;
    assert_int_equal(http_read_response(idle, &r), 0);
    http_response_free(&r);
    assert_int_equal(abacus_stop(p, SIGTERM, 15000), 0);
    char buf[1];
    assert_int_equal(read(idle, buf, 1), 0); /* the server closed it */
    close(idle);
    char log[16384];
    abacus_log(p, log, sizeof(log));
    assert_non_null(strstr(log, " info stopping signal=SIGTERM"));
    assert_non_null(strstr(log, " info stopped component=up"));
}

static void test_sigint_in_flight_request_completes(void **state)
{
    struct abacus_proc *p = *state;
    /* a request whose body is still arriving when the stop comes is answered, then the
     * server exits */
    int fd = http_connect(p->port);
    assert_true(fd >= 0);
    const char *head = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345";
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    usleep(100000);
    kill(p->pid, SIGINT);
    usleep(300000);
    assert_int_equal(write(fd, "67890", 5), 5);
    struct http_response r;
    assert_int_equal(http_read_response(fd, &r), 0);
    assert_int_equal(r.status, 200);
    char conn[32];
    assert_non_null(http_header(&r, "connection", conn, sizeof(conn)));
    assert_string_equal(conn, "close");
    http_response_free(&r);
    close(fd);
    assert_int_equal(abacus_stop(p, SIGINT, 15000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_ready_and_data_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_get_json_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_count_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_stops_cleanly_with_open_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sigint_in_flight_request_completes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
