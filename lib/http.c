/*
 * HTTP server on libh2o 2.2 (evloop). One h2o handler on "/" dispatches through Abacus's own route
 * table; one filter turns the few error responses libh2o writes itself (413 for a body over the
 * global limit, 400 for broken chunked encoding, 417) into the JSON error body. Metrics are kept
 * per worker thread (single writer, relaxed atomics) and summed when /metrics is read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <h2o.h>
#include "abacus/http.h"
#include "abacus/mem.h"

#define MAX_PARAMS 8          /* "{name}" segments in one route */
#define STATUS_MIN 100
#define STATUS_SPAN 500        /* statuses 100..599 are counted exactly */
#define PATTERN_UNMATCHED 0    /* metrics label for requests no route matched */
#define PATTERN_PROTOCOL 1     /* ... and for errors libh2o answered before routing */

/* Latency histogram bucket bounds, ns (Prometheus `le`, printed in seconds). */
static const int64_t BUCKETS[] = {100000,   250000,    500000,    1000000,   2500000,
                                  5000000,  10000000,  25000000,  50000000,  100000000,
                                  250000000, 500000000, 1000000000, 2500000000};
#define NBUCKETS (sizeof(BUCKETS) / sizeof(BUCKETS[0]))

struct route {
    char method[8];
    char *pattern;  /* owned */
    char **segs;    /* owned; pattern split at '/', "{x}" for parameters */
    size_t *seglens; /* owned; strlen of each of segs */
    size_t nsegs;
    int literal; /* no parameter: a path matches by being the pattern */
    size_t pattern_len;
    size_t pattern_id;
    ab_http_handler_cb cb;
    void *data;
    size_t max_body; /* bytes */
};

struct pattern_metrics {
    _Atomic uint64_t status[STATUS_SPAN];   /* requests by status - 100 */
    _Atomic uint64_t bucket[NBUCKETS + 1];  /* non-cumulative; last = over the top bound */
    _Atomic uint64_t sum_ns;
};

struct worker {
    struct ab_http_server *srv;
    int index;
    pthread_t tid;
    int started;
    int fd;                        /* listening socket, owned until the loop wraps it */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    struct pattern_metrics *metrics; /* [srv->npatterns] */
    /* ab_http_post: tasks queued under tasks_mu; one message on ctx.queue wakes the loop */
    h2o_multithread_receiver_t tasks_receiver;
    h2o_multithread_message_t wake;
    int wake_pending; /* wake is sent and not yet received; guarded by tasks_mu */
    pthread_mutex_t tasks_mu;
    struct task *tasks_head, *tasks_tail;
};

struct task {
    struct task *next;
    ab_http_task_cb cb;
    void *data;
};

struct ready_check {
    ab_http_ready_cb cb;
    void *data;
};

struct metrics_writer {
    ab_http_metrics_cb cb;
    void *data;
};

struct ab_http_server {
    struct ab_http_config cfg;
    char *listen; /* owned copy of cfg.listen */
    h2o_globalconf_t globalconf;
    struct route *routes;
    size_t nroutes;
    char **patterns; /* owned; metrics labels, [0] and [1] are the pseudo routes */
    size_t npatterns;
    struct ready_check *ready;
    size_t nready;
    struct metrics_writer *writers;
    size_t nwriters;
    struct worker *workers;
    int nworkers;
    uint16_t port;
    int64_t started_ms; /* wall clock at start */
    _Atomic int stop;
};

struct ab_handler {
    h2o_handler_t super;
    struct ab_http_server *srv;
};

struct ab_http_req {
    h2o_req_t *h2o;
    struct worker *w;
    const struct route *route; /* NULL when no route answers */
    size_t pattern_id;         /* metrics label */
    int64_t start_ns;          /* monotonic, when routing began */
    int responded;
    const char *param_names[MAX_PARAMS];
    const char *param_values[MAX_PARAMS];
    size_t nparams;
    const struct ab_url_query *query; /* EMPTY_QUERY unless the URL has a query string */
};

static const struct ab_url_query EMPTY_QUERY; /* count 0 */

void ab_http_config_defaults(struct ab_http_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = "127.0.0.1";
    cfg->port = 8080;
    cfg->max_body = (size_t)64 * 1024;
    cfg->max_header_bytes = (size_t)16 * 1024;
    cfg->request_timeout_ms = 10000;
    cfg->shutdown_grace_ms = 10000;
    cfg->clock = &ab_clock_system;
}

/* ---------------------------------------------------------------- metrics */

static void counter_add(_Atomic uint64_t *c, uint64_t v)
{
    /* one writer per counter (its worker thread): a plain load and store suffice */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static void record(struct worker *w, size_t pattern_id, int status, int64_t elapsed_ns)
{
    struct pattern_metrics *m = &w->metrics[pattern_id];
    int s = status - STATUS_MIN;
    if (s >= 0 && s < STATUS_SPAN)
        counter_add(&m->status[s], 1);
    size_t b = 0;
    while (b < NBUCKETS && elapsed_ns > BUCKETS[b])
        b++;
    counter_add(&m->bucket[b], 1);
    counter_add(&m->sum_ns, elapsed_ns > 0 ? (uint64_t)elapsed_ns : 0);
}

static uint64_t sum_over_workers(struct ab_http_server *srv, size_t p, size_t field_offset,
                                 size_t index)
{
    uint64_t total = 0;
    for (int i = 0; i < srv->nworkers; i++) {
        const char *base = (const char *)&srv->workers[i].metrics[p];
        const _Atomic uint64_t *c = (const _Atomic uint64_t *)(base + field_offset) + index;
        total += atomic_load_explicit(c, memory_order_relaxed);
    }
    return total;
}

static void write_http_metrics(struct ab_http_server *srv, FILE *out)
{
    fputs("# HELP abacus_http_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE abacus_http_requests_total counter\n",
          out);
    for (size_t p = 0; p < srv->npatterns; p++)
        for (size_t s = 0; s < STATUS_SPAN; s++) {
            uint64_t n = sum_over_workers(srv, p, offsetof(struct pattern_metrics, status), s);
            if (n != 0)
                fprintf(out, "abacus_http_requests_total{route=\"%s\",status=\"%zu\"} %llu\n",
                        srv->patterns[p], s + STATUS_MIN, (unsigned long long)n);
        }
    fputs("# HELP abacus_http_request_duration_seconds Time from routing to the response, by "
          "route.\n# TYPE abacus_http_request_duration_seconds histogram\n",
          out);
    for (size_t p = 0; p < srv->npatterns; p++) {
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cumulative += sum_over_workers(srv, p, offsetof(struct pattern_metrics, bucket), b);
            if (b < NBUCKETS)
                fprintf(out,
                        "abacus_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                        "%llu\n",
                        srv->patterns[p], (double)BUCKETS[b] / 1e9, (unsigned long long)cumulative);
            else
                fprintf(out,
                        "abacus_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                        "%llu\n",
                        srv->patterns[p], (unsigned long long)cumulative);
        }
        uint64_t sum_ns = sum_over_workers(srv, p, offsetof(struct pattern_metrics, sum_ns), 0);
        fprintf(out, "abacus_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
                srv->patterns[p], (double)sum_ns / 1e9);
        fprintf(out, "abacus_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                srv->patterns[p], (unsigned long long)cumulative);
    }
    fprintf(out,
            "# HELP abacus_http_threads Event-loop threads.\n"
            "# TYPE abacus_http_threads gauge\nabacus_http_threads %d\n"
            "# HELP abacus_process_start_time_seconds Start time of the server, Unix seconds.\n"
            "# TYPE abacus_process_start_time_seconds gauge\n"
            "abacus_process_start_time_seconds %.3f\n",
            srv->nworkers, (double)srv->started_ms / 1000.0);
}

/* ---------------------------------------------------------------- responses */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

void ab_http_add_header(struct ab_http_req *req, const char *name, const char *value)
{
    h2o_req_t *r = req->h2o;
    size_t nlen = strlen(name);
    char *lower = h2o_mem_alloc_pool(&r->pool, nlen);
    for (size_t i = 0; i < nlen; i++)
        lower[i] = (char)h2o_tolower(name[i]);
    h2o_iovec_t v = h2o_strdup(&r->pool, value, SIZE_MAX);
    h2o_add_header_by_str(&r->pool, &r->res.headers, lower, nlen, 1, NULL, v.base, v.len);
}

/* Sends the response; copy: body must be copied (it does not outlive the call). */
static void respond(struct ab_http_req *req, int status, const char *content_type, const char *body,
                    size_t len, int copy)
{
    h2o_req_t *r = req->h2o;
    if (req->responded) {
        AB_LOG_E(req->w->srv->cfg.log, "double_response", "route=%s status=%d",
                 req->w->srv->patterns[req->pattern_id], status);
        return;
    }
    req->responded = 1;
    if (atomic_load_explicit(&req->w->srv->stop, memory_order_relaxed))
        r->http1_is_persistent = 0; /* tell the client: this connection closes after this answer */
    r->res.status = status;
    r->res.reason = reason_phrase(status);
    r->res.content_length = len;
    h2o_add_header(&r->pool, &r->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    record(req->w, req->pattern_id, status,
           ab_clock_mono_ns(req->w->srv->cfg.clock) - req->start_ns);
    if (copy) {
        h2o_send_inline(r, body, len);
        return;
    }
    /* h2o_send_inline without its copy: the body outlives the send */
    static h2o_generator_t generator = {NULL, NULL};
    h2o_iovec_t buf = h2o_iovec_init(body, len);
    h2o_start_response(r, &generator);
    if (h2o_memis(r->input.method.base, r->input.method.len, H2O_STRLIT("HEAD")))
        h2o_send(r, NULL, 0, H2O_SEND_STATE_FINAL);
    else
        h2o_send(r, &buf, 1, H2O_SEND_STATE_FINAL);
}

void ab_http_send(struct ab_http_req *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    respond(req, status, content_type, body, len, 1);
}

void ab_http_send_kept(struct ab_http_req *req, int status, const char *content_type,
                       const char *body, size_t len)
{
    respond(req, status, content_type, body, len, 0);
}

/* The text of a JSON document being written into the request's memory, doubling as it grows. */
struct pool_text {
    h2o_mem_pool_t *pool;
    char *p;
    size_t len, cap;
};

static int pool_text_cb(const char *s, size_t n, void *data)
{
    struct pool_text *t = data;
    if (n > t->cap - t->len) {
        size_t cap = t->cap * 2 > t->len + n ? t->cap * 2 : t->len + n;
        char *p = h2o_mem_alloc_pool(t->pool, cap);
        memcpy(p, t->p, t->len);
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    return 0;
}

void ab_http_send_json(struct ab_http_req *req, int status, json_t *doc)
{
    struct pool_text t = {&req->h2o->pool, NULL, 0, 1024};
    t.p = h2o_mem_alloc_pool(t.pool, t.cap);
    json_dump_callback(doc, pool_text_cb, &t, JSON_COMPACT); /* once, into the request's memory */
    json_decref(doc);
    ab_http_send_kept(req, status, "application/json", t.p, t.len);
}

void ab_http_send_errinfo(struct ab_http_req *req, enum ab_err rc, const struct ab_errinfo *ei)
{
    ab_http_send_json(req, ab_err_http_status(rc),
                      ab_err_body(rc, ei != NULL ? ei->message : NULL,
                                  ei != NULL ? ei->field : NULL));
}

void ab_http_send_error(struct ab_http_req *req, enum ab_err rc, const char *field,
                        const char *fmt, ...)
{
    struct ab_errinfo ei;
    va_list ap;
    va_start(ap, fmt);
    ab_failv(&ei, rc, field, fmt, ap);
    va_end(ap);
    ab_http_send_errinfo(req, rc, &ei);
}

/* ---------------------------------------------------------------- request accessors */

const char *ab_http_method(const struct ab_http_req *req)
{
    h2o_iovec_t m = req->h2o->method;
    return h2o_strdup(&req->h2o->pool, m.base, m.len).base;
}

const char *ab_http_param(const struct ab_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}

const struct ab_url_query *ab_http_query(const struct ab_http_req *req)
{
    return req->query;
}

const char *ab_http_body(const struct ab_http_req *req, size_t *len)
{
    *len = req->h2o->entity.len;
    return req->h2o->entity.base != NULL ? req->h2o->entity.base : "";
}

const char *ab_http_header(const struct ab_http_req *req, const char *name, size_t *len)
{
    char lower[64];
    size_t n = strlen(name);
    if (n > sizeof(lower))
        return NULL;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)h2o_tolower(name[i]);
    /* h2o files the headers it knows under their token: found by the pointer */
    const h2o_token_t *token = h2o_lookup_token(lower, n);
    ssize_t at = token != NULL ? h2o_find_header(&req->h2o->headers, token, -1)
                               : h2o_find_header_by_str(&req->h2o->headers, lower, n, -1);
    if (at < 0)
        return NULL;
    const h2o_header_t *h = &req->h2o->headers.entries[at];
    if (len != NULL)
        *len = h->value.len;
    return h2o_strdup(&req->h2o->pool, h->value.base, h->value.len).base;
}

int ab_http_content_type_is(const struct ab_http_req *req, const char *type)
{
    size_t len = 0, n = strlen(type);
    const char *ct = ab_http_header(req, "content-type", &len);
    if (ct == NULL || len < n || strncasecmp(ct, type, n) != 0)
        return 0;
    return len == n || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

void ab_http_send_unsupported_media(struct ab_http_req *req, const char *types)
{
    ab_http_send_error(req, AB_ERR_UNSUPPORTED_MEDIA, "content-type", "send the body as %s",
                       types);
}

json_t *ab_http_json_object(struct ab_http_req *req, const struct ab_json_limits *limits)
{
    if (!ab_http_content_type_is(req, "application/json")) {
        ab_http_send_unsupported_media(req, "application/json");
        return NULL;
    }
    size_t len;
    const char *body = ab_http_body(req, &len);
    json_t *doc = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_json_parse(body, len, limits, &doc, &ei);
    if (rc == AB_OK && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
        rc = ab_fail(&ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    }
    if (rc != AB_OK)
        ab_http_send_errinfo(req, rc, &ei);
    return doc;
}

void ab_http_peer(const struct ab_http_req *req, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    h2o_conn_t *conn = req->h2o->conn;
    buf[0] = '\0';
    if (conn == NULL || conn->callbacks->get_peername == NULL ||
        conn->callbacks->get_peername(conn, (struct sockaddr *)&ss) == 0)
        return;
    const void *addr = ss.ss_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)&ss)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, addr, buf, (socklen_t)len) == NULL)
        buf[0] = '\0';
}

int ab_http_thread(const struct ab_http_req *req)
{
    return req->w->index;
}

void *ab_http_alloc(struct ab_http_req *req, size_t size)
{
    return h2o_mem_alloc_pool(&req->h2o->pool, size);
}

static void on_tasks(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, tasks_receiver, receiver);
    (void)messages; /* holds w->wake alone, which this unlinks */
    h2o_linklist_unlink(&w->wake.link);
    pthread_mutex_lock(&w->tasks_mu);
    struct task *t = w->tasks_head;
    w->tasks_head = w->tasks_tail = NULL;
    w->wake_pending = 0;
    pthread_mutex_unlock(&w->tasks_mu);
    while (t != NULL) {
        struct task *next = t->next;
        t->cb(t->data);
        free(t);
        t = next;
    }
}

void ab_http_post(struct ab_http_server *srv, int thread, ab_http_task_cb cb, void *data)
{
    struct worker *w = &srv->workers[thread];
    struct task *t = ab_mem_calloc(1, sizeof(*t));
    t->cb = cb;
    t->data = data;
    pthread_mutex_lock(&w->tasks_mu);
    if (w->tasks_tail != NULL)
        w->tasks_tail->next = t;
    else
        w->tasks_head = t;
    w->tasks_tail = t;
    int wake = !w->wake_pending;
    w->wake_pending = 1;
    pthread_mutex_unlock(&w->tasks_mu);
    if (wake)
        h2o_multithread_send_message(&w->tasks_receiver, &w->wake);
}

/* ---------------------------------------------------------------- routing */

/* Splits "/a/{b}/c" into owned segments; returns -1 for a malformed pattern. */
static int split_pattern(const char *pattern, char ***segs_out, size_t *nsegs_out)
{
    if (pattern[0] != '/')
        return -1;
    char **segs = NULL;
    size_t n = 0;
    const char *p = pattern + 1;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (len == 0 && (slash != NULL || n > 0))
            goto Fail; /* "//" or trailing '/' */
        if (len > 0) {
            int is_param = p[0] == '{';
            if (is_param && (len < 3 || p[len - 1] != '}'))
                goto Fail;
            segs = ab_mem_realloc(segs, (n + 1) * sizeof(*segs));
            segs[n] = ab_mem_calloc(1, len + 1);
            memcpy(segs[n++], p, len);
        }
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    *segs_out = segs;
    *nsegs_out = n;
    return 0;
Fail:
    for (size_t i = 0; i < n; i++)
        free(segs[i]);
    free(segs);
    return -1;
}

static size_t intern_pattern(struct ab_http_server *srv, const char *pattern)
{
    for (size_t i = 0; i < srv->npatterns; i++)
        if (strcmp(srv->patterns[i], pattern) == 0)
            return i;
    srv->patterns =
        ab_mem_realloc(srv->patterns, (srv->npatterns + 1) * sizeof(*srv->patterns));
    srv->patterns[srv->npatterns] = ab_mem_strdup(pattern);
    return srv->npatterns++;
}

enum ab_err ab_http_route(struct ab_http_server *srv, const char *method, const char *pattern,
                          ab_http_handler_cb handler, void *data, size_t max_body,
                          struct ab_errinfo *ei)
{
    if (strlen(method) >= sizeof(srv->routes[0].method))
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "bad method %s", method);
    for (size_t i = 0; i < srv->nroutes; i++)
        if (strcmp(srv->routes[i].method, method) == 0 &&
            strcmp(srv->routes[i].pattern, pattern) == 0)
            return ab_fail(ei, AB_ERR_INTERNAL, NULL, "route %s %s registered twice", method,
                           pattern);
    struct route r = {.cb = handler, .data = data};
    if (split_pattern(pattern, &r.segs, &r.nsegs) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "malformed route pattern %s", pattern);
    r.seglens = ab_mem_calloc(r.nsegs + 1, sizeof(*r.seglens));
    for (size_t s = 0; s < r.nsegs; s++)
        r.seglens[s] = strlen(r.segs[s]);
    snprintf(r.method, sizeof(r.method), "%s", method);
    r.pattern = ab_mem_strdup(pattern);
    r.pattern_len = strlen(pattern);
    r.literal = strchr(pattern, '{') == NULL;
    r.pattern_id = intern_pattern(srv, pattern);
    r.max_body = max_body != 0 ? max_body : srv->cfg.max_body;
    srv->routes = ab_mem_realloc(srv->routes, (srv->nroutes + 1) * sizeof(*srv->routes));
    srv->routes[srv->nroutes++] = r;
    return AB_OK;
}

/*
 * Matches path (no query) against a route's segments; on success records the raw parameter
 * segments in raw[] (pointers into path).
 */
static int match_route(const struct route *rt, const char *path, size_t len, h2o_iovec_t *raw)
{
    size_t i = 0, seg = 0, nparam = 0;
    if (rt->literal)
        return len == rt->pattern_len && memcmp(path, rt->pattern, len) == 0;
    if (len == 0 || path[0] != '/')
        return 0;
    i = 1;
    if (rt->nsegs == 0)
        return len == 1;
    while (seg < rt->nsegs) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t slen = i - start;
        const char *want = rt->segs[seg];
        if (want[0] == '{') {
            if (slen == 0)
                return 0;
            raw[nparam++] = h2o_iovec_init(path + start, slen);
        } else if (rt->seglens[seg] != slen || memcmp(want, path + start, slen) != 0) {
            return 0;
        }
        seg++;
        if (i == len)
            break;
        i++; /* skip '/' */
        if (seg == rt->nsegs)
            return 0; /* path has more segments */
    }
    return seg == rt->nsegs && i == len;
}

static int method_is(const h2o_req_t *r, const char *m)
{
    return h2o_memis(r->method.base, r->method.len, m, strlen(m));
}

static int method_matches(const h2o_req_t *r, const struct route *rt)
{
    return method_is(r, rt->method) || (strcmp(rt->method, "GET") == 0 && method_is(r, "HEAD"));
}

static size_t header_bytes(const h2o_req_t *r)
{
    size_t n = r->method.len + r->path.len + 12;
    for (size_t i = 0; i < r->headers.size; i++)
        n += r->headers.entries[i].name->len + r->headers.entries[i].value.len + 4;
    return n;
}

/* Answers 405 with Allow listing every method registered for a path that matched. */
static void send_method_not_allowed(struct ab_http_req *req, const char *path, size_t len)
{
    struct ab_http_server *srv = req->w->srv;
    char allow[128] = "";
    size_t pos = 0;
    h2o_iovec_t raw[MAX_PARAMS];
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *rt = &srv->routes[i];
        if (!match_route(rt, path, len, raw))
            continue;
        int n = snprintf(allow + pos, sizeof(allow) - pos, "%s%s%s", pos ? ", " : "", rt->method,
                         strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
        if (n > 0 && (size_t)n < sizeof(allow) - pos)
            pos += (size_t)n;
    }
    ab_http_add_header(req, "Allow", allow);
    ab_http_send_error(req, AB_ERR_METHOD_NOT_ALLOWED, NULL, "%.*s is not allowed here; allowed: %s",
                       (int)req->h2o->method.len, req->h2o->method.base, allow);
}

/* Decodes the route's parameters and the query string; answers 400 itself on failure. */
static int prepare_request(struct ab_http_req *req, const h2o_iovec_t *raw, const char *query,
                           size_t qlen)
{
    h2o_req_t *r = req->h2o;
    struct ab_errinfo ei;
    const struct route *rt = req->route;
    for (size_t s = 0; s < rt->nsegs; s++) {
        if (rt->segs[s][0] != '{')
            continue;
        const h2o_iovec_t *v = &raw[req->nparams];
        char *out = h2o_mem_alloc_pool(&r->pool, v->len + 1);
        size_t outlen = 0;
        size_t namelen = strlen(rt->segs[s]) - 2;
        char *name = h2o_mem_alloc_pool(&r->pool, namelen + 1);
        memcpy(name, rt->segs[s] + 1, namelen);
        name[namelen] = '\0';
        enum ab_err rc = ab_url_decode(v->base, v->len, 0, out, &outlen, &ei);
        if (rc != AB_OK) {
            snprintf(ei.field, sizeof(ei.field), "%s", name);
            ab_http_send_errinfo(req, rc, &ei);
            return -1;
        }
        out[outlen] = '\0';
        req->param_names[req->nparams] = name;
        req->param_values[req->nparams++] = out;
    }
    if (qlen > 0) {
        char *scratch = h2o_mem_alloc_pool(&r->pool, ab_url_scratch_size(qlen));
        struct ab_url_query *parsed = h2o_mem_alloc_pool(&r->pool, sizeof(*parsed));
        parsed->cap = ab_url_param_bound(query, qlen);
        parsed->params = h2o_mem_alloc_pool(&r->pool, parsed->cap * sizeof(*parsed->params));
        enum ab_err rc = ab_url_parse_query(query, qlen, scratch, parsed, &ei);
        req->query = parsed;
        if (rc != AB_OK) {
            ab_http_send_errinfo(req, rc, &ei);
            return -1;
        }
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *r)
{
    struct ab_http_server *srv = ((struct ab_handler *)self)->srv;
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, r->conn->ctx);
    struct ab_http_req *req = h2o_mem_alloc_pool(&r->pool, sizeof(*req));
    memset(req, 0, sizeof(*req));
    req->query = &EMPTY_QUERY;
    req->h2o = r;
    req->w = w;
    req->pattern_id = PATTERN_UNMATCHED;
    req->start_ns = ab_clock_mono_ns(srv->cfg.clock);

    if (header_bytes(r) > srv->cfg.max_header_bytes) {
        ab_http_send_error(req, AB_ERR_HEADERS_TOO_LARGE, NULL,
                           "request line and headers exceed %zu bytes",
                           srv->cfg.max_header_bytes);
        return 0;
    }
    const char *path = r->path.base;
    size_t plen = r->path.len;
    const char *q = memchr(path, '?', plen);
    const char *query = NULL;
    size_t qlen = 0;
    if (q != NULL) {
        query = q + 1;
        qlen = plen - (size_t)(q - path) - 1;
        plen = (size_t)(q - path);
    }
    h2o_iovec_t raw[MAX_PARAMS];
    int path_known = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *rt = &srv->routes[i];
        if (!match_route(rt, path, plen, raw))
            continue;
        if (!path_known) {
            path_known = 1;
            req->pattern_id = rt->pattern_id;
        }
        if (method_matches(r, rt)) {
            req->route = rt;
            req->pattern_id = rt->pattern_id;
            break;
        }
    }
    if (req->route == NULL) {
        if (path_known)
            send_method_not_allowed(req, path, plen);
        else
            ab_http_send_error(req, AB_ERR_NOT_FOUND, NULL, "no such path: %.*s", (int)plen,
                               path);
        return 0;
    }
    if (r->entity.len > req->route->max_body) {
        ab_http_send_error(req, AB_ERR_TOO_LARGE, "body",
                           "the body is %zu bytes, over this route's limit of %zu",
                           r->entity.len, req->route->max_body);
        return 0;
    }
    if (prepare_request(req, raw, query, qlen) != 0)
        return 0;
    req->route->cb(req, req->route->data);
    return 0;
}

/* ---------------------------------------------------------------- errors written by libh2o */

struct json_error_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
};

static void json_error_do_send(h2o_ostream_t *self, h2o_req_t *r, h2o_iovec_t *bufs,
                               size_t bufcnt, h2o_send_state_t state)
{
    (void)bufs;
    (void)bufcnt;
    struct json_error_ostream *o = (struct json_error_ostream *)self;
    if (h2o_send_state_is_in_progress(state)) {
        h2o_ostream_send_next(self, r, NULL, 0, state);
        return;
    }
    h2o_ostream_send_next(self, r, &o->body, 1, state);
}

static enum ab_err err_for_status(int status)
{
    switch (status) {
    case 413: return AB_ERR_TOO_LARGE;
    case 431: return AB_ERR_HEADERS_TOO_LARGE;
    case 404: return AB_ERR_NOT_FOUND;
    case 405: return AB_ERR_METHOD_NOT_ALLOWED;
    case 503: return AB_ERR_UNAVAILABLE;
    default: return status >= 500 ? AB_ERR_INTERNAL : AB_ERR_BAD_REQUEST;
    }
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *r, h2o_ostream_t **slot)
{
    (void)self;
    ssize_t ct = h2o_find_header(&r->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (r->res.status >= 400 && ct >= 0 &&
        h2o_memis(r->res.headers.entries[ct].value.base, 10, H2O_STRLIT("text/plain"))) {
        enum ab_err rc = err_for_status(r->res.status);
        json_t *doc = ab_err_body(rc, NULL, rc == AB_ERR_TOO_LARGE ? "body" : NULL);
        size_t len = json_dumpb(doc, NULL, 0, JSON_COMPACT);
        char *buf = h2o_mem_alloc_pool(&r->pool, len);
        json_dumpb(doc, buf, len, JSON_COMPACT);
        json_decref(doc);
        r->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        r->res.content_length = len;
        struct json_error_ostream *o =
            (void *)h2o_add_ostream(r, sizeof(struct json_error_ostream), slot);
        o->super.do_send = json_error_do_send;
        o->body = h2o_iovec_init(buf, len);
        slot = &o->super.next;
        struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, ctx, r->conn->ctx);
        record(w, PATTERN_PROTOCOL, r->res.status, 0);
    }
    h2o_setup_next_ostream(r, slot);
}

/* ---------------------------------------------------------------- built-in routes */

static void handle_healthz(struct ab_http_req *req, void *data)
{
    (void)data;
    static const char BODY[] = "{\"status\":\"ok\"}";
    ab_http_send(req, 200, "application/json", BODY, sizeof(BODY) - 1);
}

static void handle_readyz(struct ab_http_req *req, void *data)
{
    struct ab_http_server *srv = data;
    char reason[256];
    for (size_t i = 0; i < srv->nready; i++) {
        reason[0] = '\0';
        if (!srv->ready[i].cb(srv->ready[i].data, reason, sizeof(reason))) {
            ab_http_add_header(req, "Retry-After", "1");
            ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "not ready: %s",
                               reason[0] != '\0' ? reason : "starting");
            return;
        }
    }
    static const char BODY[] = "{\"status\":\"ready\"}";
    ab_http_send(req, 200, "application/json", BODY, sizeof(BODY) - 1);
}

static void handle_metrics(struct ab_http_req *req, void *data)
{
    struct ab_http_server *srv = data;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL) {
        ab_http_send_error(req, AB_ERR_INTERNAL, NULL, "cannot allocate the metrics text");
        return;
    }
    write_http_metrics(srv, out);
    for (size_t i = 0; i < srv->nwriters; i++)
        srv->writers[i].cb(srv->writers[i].data, out);
    fclose(out);
    ab_http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

void ab_http_add_ready_check(struct ab_http_server *srv, ab_http_ready_cb cb, void *data)
{
    srv->ready = ab_mem_realloc(srv->ready, (srv->nready + 1) * sizeof(*srv->ready));
    srv->ready[srv->nready++] = (struct ready_check){cb, data};
}

void ab_http_add_metrics(struct ab_http_server *srv, ab_http_metrics_cb cb, void *data)
{
    srv->writers =
        ab_mem_realloc(srv->writers, (srv->nwriters + 1) * sizeof(*srv->writers));
    srv->writers[srv->nwriters++] = (struct metrics_writer){cb, data};
}

/* ---------------------------------------------------------------- lifecycle */

enum ab_err ab_http_server_new(const struct ab_http_config *cfg, struct ab_http_server **out,
                               struct ab_errinfo *ei)
{
    struct ab_http_server *srv = ab_mem_calloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    srv->listen = ab_mem_strdup(cfg->listen != NULL ? cfg->listen : "127.0.0.1");
    srv->cfg.listen = srv->listen;
    if (srv->cfg.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        srv->cfg.threads = n > 0 ? (int)n : 1;
    }
    if (srv->cfg.clock == NULL)
        srv->cfg.clock = &ab_clock_system;
    intern_pattern(srv, "unmatched");
    intern_pattern(srv, "protocol");
    enum ab_err rc;
    if ((rc = ab_http_route(srv, "GET", "/healthz", handle_healthz, srv, 0, ei)) != AB_OK ||
        (rc = ab_http_route(srv, "GET", "/readyz", handle_readyz, srv, 0, ei)) != AB_OK ||
        (rc = ab_http_route(srv, "GET", "/metrics", handle_metrics, srv, 0, ei)) != AB_OK) {
        ab_http_server_free(srv);
        return rc;
    }
    *out = srv;
    return AB_OK;
}

/* Binds a listening TCP socket; SO_REUSEPORT when reuseport. *port in: wanted, out: bound. */
static enum ab_err open_listener(const char *host, uint16_t *port, int reuseport, int *fd_out,
                                 struct ab_errinfo *ei)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)*port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0)
        return ab_fail(ei, AB_ERR_IO, "listen", "cannot resolve listen address %s: %s", host,
                       gai_strerror(gai));
    enum ab_err rc = AB_OK;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        rc = ab_fail(ei, AB_ERR_IO, "port", "cannot listen on %s port %u: %s", host,
                     (unsigned)*port, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto Exit;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
Exit:
    freeaddrinfo(res);
    return rc;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct worker *w = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&w->accept_ctx, sock);
}

static int count_busy_cb(h2o_req_t *r, void *data)
{
    /* libh2o zeroes request_begin_at for each new request and sets it when its first bytes
     * arrive: non-zero means a request is being read, handled or answered */
    if (r->timestamps.request_begin_at.tv_sec != 0)
        ++*(size_t *)data;
    return 0;
}

static size_t count_busy(struct worker *w)
{
    size_t busy = 0;
    w->ctx.globalconf->http1.callbacks.foreach_request(&w->ctx, count_busy_cb, &busy);
    return busy;
}

/*
 * Graceful stop of one worker: no new connections; requests already begun (being read, handled
 * or answered) get up to shutdown_grace_ms to finish, and are answered with Connection: close;
 * then the idle keep-alive connections are closed. Returns -1 when a connection is left (a
 * handler that never answered), in which case the loop must not be disposed.
 */
static int drain(struct worker *w)
{
    const struct ab_clock *clock = w->srv->cfg.clock;
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
    /* what h2o_context_request_shutdown does for HTTP/1 (answers say Connection: close); its
     * HTTP/2 part would arm a timer that outlives the loop, and this server speaks no HTTP/2 */
    w->ctx.shutdown_requested = 1;
    int64_t deadline = ab_clock_mono_ns(clock) + (int64_t)w->srv->cfg.shutdown_grace_ms * 1000000;
    while (count_busy(w) > 0 && ab_clock_mono_ns(clock) < deadline)
        h2o_evloop_run(w->ctx.loop, 10);
    /* what is left waits for a request on the request timer: expire it now */
    w->ctx.http1.req_timeout.timeout = 0;
    for (int i = 0; i < 20 && !h2o_linklist_is_empty(&w->ctx.http1._conns); i++)
        h2o_evloop_run(w->ctx.loop, 10);
    return h2o_linklist_is_empty(&w->ctx.http1._conns) ? 0 : -1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ab_http_server *srv = w->srv;
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, loop, &srv->globalconf);
    h2o_multithread_register_receiver(w->ctx.queue, &w->tasks_receiver, on_tasks);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = srv->globalconf.hosts;
    w->listener = h2o_evloop_socket_create(loop, w->fd, H2O_SOCKET_FLAG_DONT_READ);
    w->fd = -1;
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    /* h2o_evloop_run cannot be interrupted: poll the stop flag between short runs */
    while (!atomic_load_explicit(&srv->stop, memory_order_acquire))
        h2o_evloop_run(loop, 50);
    if (drain(w) != 0) {
        /* a handler is still busy: disposing the loop under it would crash, so leave it */
        AB_LOG_W(srv->cfg.log, "shutdown_incomplete", "thread=%d busy_requests=%zu", w->index,
                 count_busy(w));
        return NULL;
    }
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->tasks_receiver);
    h2o_context_dispose(&w->ctx);
    h2o_evloop_destroy(loop);
    return NULL;
}

enum ab_err ab_http_server_start(struct ab_http_server *srv, struct ab_errinfo *ei)
{
    enum ab_err rc = AB_OK;
    uint16_t port = srv->cfg.port;
    if (port != 0) {
        /* a socket without SO_REUSEPORT fails where anyone listens, even a stale abacus that
         * SO_REUSEPORT would otherwise let us share the port with */
        int probe = -1;
        if ((rc = open_listener(srv->cfg.listen, &port, 0, &probe, ei)) != AB_OK)
            return rc;
        close(probe);
    }
    size_t max_body = srv->cfg.max_body;
    for (size_t i = 0; i < srv->nroutes; i++)
        if (srv->routes[i].max_body > max_body)
            max_body = srv->routes[i].max_body;

    h2o_config_init(&srv->globalconf);
    srv->globalconf.max_request_entity_size = max_body;
    srv->globalconf.http1.req_timeout = srv->cfg.request_timeout_ms;
    srv->globalconf.http1.upgrade_to_http2 = 0;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("abacus"));
    h2o_hostconf_t *host = h2o_config_register_host(
        &srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct ab_handler *h = (void *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h2o_create_filter(path, sizeof(h2o_filter_t))->on_setup_ostream = on_setup_ostream;
    h2o_create_filter(&host->fallback_path, sizeof(h2o_filter_t))->on_setup_ostream =
        on_setup_ostream;

    srv->nworkers = srv->cfg.threads;
    srv->workers = ab_mem_calloc((size_t)srv->nworkers, sizeof(*srv->workers));
    for (int i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        w->fd = -1;
        w->metrics = ab_mem_calloc(srv->npatterns, sizeof(*w->metrics));
        pthread_mutex_init(&w->tasks_mu, NULL);
        if ((rc = open_listener(srv->cfg.listen, &port, 1, &w->fd, ei)) != AB_OK)
            goto Fail;
    }
    srv->port = port;
    srv->started_ms = ab_clock_now_ms(srv->cfg.clock);
    for (int i = 0; i < srv->nworkers; i++) {
        if (pthread_create(&srv->workers[i].tid, NULL, worker_main, &srv->workers[i]) != 0) {
            rc = ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start thread: %s", strerror(errno));
            ab_http_server_stop(srv);
            ab_http_server_wait(srv);
            goto Fail;
        }
        srv->workers[i].started = 1;
    }
    return AB_OK;
Fail:
    for (int i = 0; i < srv->nworkers; i++)
        if (!srv->workers[i].started && srv->workers[i].fd >= 0) {
            close(srv->workers[i].fd);
            srv->workers[i].fd = -1;
        }
    return rc;
}

int ab_http_server_threads(const struct ab_http_server *srv)
{
    return srv->cfg.threads;
}

uint16_t ab_http_server_port(const struct ab_http_server *srv)
{
    return srv->port;
}

void ab_http_server_stop(struct ab_http_server *srv)
{
    atomic_store_explicit(&srv->stop, 1, memory_order_release);
}

void ab_http_server_wait(struct ab_http_server *srv)
{
    for (int i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].started) {
            pthread_join(srv->workers[i].tid, NULL);
            srv->workers[i].started = 0;
        }
}

void ab_http_server_free(struct ab_http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->workers != NULL) {
        for (int i = 0; i < srv->nworkers; i++) {
            if (srv->workers[i].fd >= 0)
                close(srv->workers[i].fd);
            free(srv->workers[i].metrics);
            pthread_mutex_destroy(&srv->workers[i].tasks_mu);
        }
        free(srv->workers);
        h2o_config_dispose(&srv->globalconf);
    }
    for (size_t i = 0; i < srv->nroutes; i++) {
        for (size_t s = 0; s < srv->routes[i].nsegs; s++)
            free(srv->routes[i].segs[s]);
        free(srv->routes[i].segs);
        free(srv->routes[i].seglens);
        free(srv->routes[i].pattern);
    }
    free(srv->routes);
    for (size_t i = 0; i < srv->npatterns; i++)
        free(srv->patterns[i]);
    free(srv->patterns);
    free(srv->ready);
    free(srv->writers);
    free(srv->listen);
    free(srv);
}
