/*
 * The HTTP server every Abacus component mounts its routes on: libh2o's evloop flavour with N
 * worker threads, each with its own event loop and its own SO_REUSEPORT listener on one port. It
 * owns routing (method + path pattern -> handler; 404 and 405 with Allow), query-string parsing
 * (malformed percent-encoding, NUL and invalid UTF-8 are refused with 400), request limits (body
 * size per route, header size, a request timeout), JSON responses and errors through the one
 * mapping of abacus/err.h, /healthz, /readyz and /metrics (Prometheus text), and graceful
 * shutdown. It knows nothing of experiments or events: components register handlers.
 *
 * Threading: handlers run on the worker thread that accepted the connection; one handler call at a
 * time per worker. Everything registered (routes, readiness checks, metric writers) must be added
 * before ab_http_server_start().
 */
#ifndef ABACUS_HTTP_H
#define ABACUS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/err.h"
#include "abacus/json.h"
#include "abacus/log.h"
#include "abacus/url.h"

struct ab_http_server;
struct ab_http_req;

struct ab_http_config {
    const char *listen;          /* address to bind: IPv4/IPv6 literal or host name */
    uint16_t port;               /* 0 = any free port (read it back with ab_http_server_port) */
    int threads;                 /* event-loop threads; 0 = number of online cores */
    size_t max_body;             /* body limit of routes that set none, bytes */
    size_t max_header_bytes;     /* request line + all headers, bytes; over it: 431 */
    uint64_t request_timeout_ms; /* longest wait for a whole request, idle or mid-request */
    uint64_t shutdown_grace_ms;  /* how long a stop waits for in-flight requests */
    const struct ab_log *log;    /* required */
    const struct ab_clock *clock; /* required; latency uses its monotonic reading */
};

/*
 * Defaults: 127.0.0.1:8080, threads 0, max_body 64 KiB, max_header_bytes 16 KiB, request timeout
 * 10 s (libh2o 2.2 uses one timer for a keep-alive connection's idle wait and for reading the
 * next request, so this is both the read and the idle timeout), shutdown grace 10 s, system clock.
 */
void ab_http_config_defaults(struct ab_http_config *cfg);

/*
 * A handler gets the request and the data given at registration. It must answer exactly once,
 * with one of the ab_http_send* functions, before returning or later from the same thread.
 */
typedef void (*ab_http_handler_cb)(struct ab_http_req *req, void *data);

/* Readiness check for /readyz: return 1 when ready; else 0 and a reason in reason[0..len). */
typedef int (*ab_http_ready_cb)(void *data, char *reason, size_t len);

/* Writes extra Prometheus text (# HELP, # TYPE and samples) for /metrics to out. */
typedef void (*ab_http_metrics_cb)(void *data, FILE *out);

/* Creates a server (not yet listening) with /healthz, /readyz and /metrics registered. */
enum ab_err ab_http_server_new(const struct ab_http_config *cfg, struct ab_http_server **out,
                               struct ab_errinfo *ei);

/*
 * Registers handler for method ("GET", "POST", ...; a GET route also answers HEAD) on pattern, a
 * path whose segments are literals or "{name}" (one non-empty segment, percent-decoded, read with
 * ab_http_param). max_body is the largest accepted body in bytes (0: the server's max_body).
 * Returns AB_ERR_INTERNAL for a malformed pattern or a duplicate (method, pattern).
 */
enum ab_err ab_http_route(struct ab_http_server *srv, const char *method, const char *pattern,
                          ab_http_handler_cb handler, void *data, size_t max_body,
                          struct ab_errinfo *ei);

void ab_http_add_ready_check(struct ab_http_server *srv, ab_http_ready_cb cb, void *data);
void ab_http_add_metrics(struct ab_http_server *srv, ab_http_metrics_cb cb, void *data);

/*
 * Binds the listeners and starts the worker threads. When cfg.port is not 0 and another process
 * listens there, fails with AB_ERR_IO rather than sharing the port through SO_REUSEPORT.
 */
enum ab_err ab_http_server_start(struct ab_http_server *srv, struct ab_errinfo *ei);

/* Number of worker threads (known from ab_http_server_new on). */
int ab_http_server_threads(const struct ab_http_server *srv);

/* The port the server listens on (meaningful after start; resolves port 0). */
uint16_t ab_http_server_port(const struct ab_http_server *srv);

/*
 * Asks the workers to stop: they close their listeners (no new connections), let in-flight
 * requests finish (up to shutdown_grace_ms), close idle connections and exit. Returns at once;
 * safe to call from any thread, more than once.
 */
void ab_http_server_stop(struct ab_http_server *srv);

/* Waits until every worker has exited (after ab_http_server_stop). */
void ab_http_server_wait(struct ab_http_server *srv);

/* Frees a server that was never started or has been waited for. Accepts NULL. */
void ab_http_server_free(struct ab_http_server *srv);

/* --- request accessors (valid during the handler call and until the response is sent) --- */

const char *ab_http_method(const struct ab_http_req *req);

/* Decoded path parameter "{name}" of the route, or NULL. */
const char *ab_http_param(const struct ab_http_req *req, const char *name);

/* The parsed query string (empty when there is none). */
const struct ab_url_query *ab_http_query(const struct ab_http_req *req);

/* The request body (whole; within the route's limit). *len gets its size. */
const char *ab_http_body(const struct ab_http_req *req, size_t *len);

/* Value of the first header called name (case-insensitive), or NULL; *len gets its length. */
const char *ab_http_header(const struct ab_http_req *req, const char *name, size_t *len);

/*
 * 1 when the request's Content-Type names the media type `type` ("application/json"): compared
 * case-insensitively, with parameters allowed after it ("application/json; charset=utf-8");
 * 0 otherwise, and when there is no Content-Type.
 */
int ab_http_content_type_is(const struct ab_http_req *req, const char *type);

/*
 * Sends the one 415 of every route that takes a body: code unsupported_media_type, field
 * "content-type", message "send the body as " + types ("application/json").
 */
void ab_http_send_unsupported_media(struct ab_http_req *req, const char *types);

/*
 * The body of a route that takes a JSON object: checks the media type (application/json, else
 * the 415 above), parses within limits (NULL: ab_json_default_limits; over max_bytes: 413) and
 * requires an object (field "body"). Returns the document (a new reference, the caller's), or
 * NULL once it has answered the error itself.
 */
json_t *ab_http_json_object(struct ab_http_req *req, const struct ab_json_limits *limits);

/*
 * The client's address as text ("127.0.0.1", "::1") into buf[0..len) (NUL-terminated; "" when
 * unknown). The TCP peer: a proxy in front shows as the proxy.
 */
void ab_http_peer(const struct ab_http_req *req, char *buf, size_t len);

/* Index of the worker thread handling the request, 0 .. ab_http_server_threads() - 1. */
int ab_http_thread(const struct ab_http_req *req);

/* Memory that lives as long as the request; freed with it (never free it by hand). */
void *ab_http_alloc(struct ab_http_req *req, size_t size);

/* A function run on a worker thread by ab_http_post. */
typedef void (*ab_http_task_cb)(void *data);

/*
 * Runs cb(data) soon on worker thread `thread` (0 .. ab_http_server_threads() - 1), from its event
 * loop: how work finished on another thread (a database writer) answers a request it took over,
 * since a request is answered from its own thread. Thread-safe; allowed from ab_http_server_start
 * until the workers have exited, which they do only once every request begun is answered (or the
 * shutdown grace ran out, in which case the task still runs while the worker waits).
 */
void ab_http_post(struct ab_http_server *srv, int thread, ab_http_task_cb cb, void *data);

/* --- responses: exactly one per request --- */

/* Adds a response header (copied). Call before the send. */
void ab_http_add_header(struct ab_http_req *req, const char *name, const char *value);

/* Sends status with body[0..len) (copied) as content_type. */
void ab_http_send(struct ab_http_req *req, int status, const char *content_type, const char *body,
                  size_t len);

/*
 * ab_http_send for a body that lives as long as the request (from ab_http_alloc, or static): not
 * copied.
 */
void ab_http_send_kept(struct ab_http_req *req, int status, const char *content_type,
                       const char *body, size_t len);

/* Sends doc as compact JSON with status; takes over the reference to doc. */
void ab_http_send_json(struct ab_http_req *req, int status, json_t *doc);

/* Sends the JSON error body for rc with its status; message is a printf format. */
void ab_http_send_error(struct ab_http_req *req, enum ab_err rc, const char *field,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sends the JSON error body for rc with the field and message recorded in ei (may be NULL). */
void ab_http_send_errinfo(struct ab_http_req *req, enum ab_err rc, const struct ab_errinfo *ei);

#endif
