/*
 * The collector node: HTTP glue around the pure parser (parse.c) and the store (store.c). A
 * request is authenticated with an ingest key of the current snapshot, parsed and validated on
 * its worker thread, then handed to the store's writer; the answer is sent from the worker
 * thread (through ab_http_post) once the writer has committed the batch, so a 200 always means
 * durable. The snapshot (ingest keys, experiments) comes from a follower (lib/follower: a watched
 * file, or replication from a control plane or mirror) into a holder (lib/holder), as the assign
 * node's does; a request holds the one it uses while it parses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include "abacus/follower.h"
#include "abacus/holder.h"
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "collect.h"
#include "collect_int.h"

enum unavailable { UNAV_NOT_READY, UNAV_QUEUE_FULL, UNAV_STORAGE, UNAV_OUTBOX_FULL, UNAV_COUNT };
static const char *const UNAV_NAMES[UNAV_COUNT] = {"not_ready", "queue_full", "storage",
                                                   "outbox_full"};

struct collect_node {
    struct collect_node_config cfg;
    char *db_path;
    char *forward_url;
    struct ab_http_server *srv;
    struct collect_store *store;
    struct collect_forward *forward; /* NULL unless forwarding */
    struct ab_follower *follower;    /* NULL without a snapshot source: never ready */
    struct ab_holder holder;         /* the current struct ab_snapshot; a slot per HTTP worker */
    _Atomic uint64_t unavailable[UNAV_COUNT];
    _Atomic uint64_t unauthorized;
    _Atomic uint64_t refused[AB_ERR_COUNT]; /* whole requests refused, by -error code */
};

/* A request waiting for the writer; lives in the request's pool. */
struct pending {
    struct ab_http_req *req;
    struct collect_node *node;
};

/* ---------------------------------------------------------------- the snapshot */

/* The follower's callback: s becomes the snapshot requests check against. */
static enum ab_err node_ready(void *data, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    (void)ei;
    struct collect_node *n = data;
    AB_LOG_I(n->cfg.log, "collect_snapshot", "version=%lld ingest_keys=%zu",
             (long long)s->version, s->ningest_keys);
    ab_holder_publish(&n->holder, s);
    return AB_OK;
}

static void snapshot_free(void *s)
{
    ab_snapshot_free(s);
}

/* ---------------------------------------------------------------- authentication */

/*
 * Decodes base64 s[0..len) (standard or URL-safe alphabet, padded or not) into out (cap bytes,
 * NUL-terminated); -1 when malformed or too long.
 */
static int b64_decode(const char *s, size_t len, char *out, size_t cap)
{
    static const int VARIANTS[] = {sodium_base64_VARIANT_ORIGINAL,
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t v = 0; v < sizeof(VARIANTS) / sizeof(VARIANTS[0]); v++) {
        size_t n = 0;
        if (sodium_base642bin((unsigned char *)out, cap - 1, s, len, NULL, &n, NULL,
                              VARIANTS[v]) == 0) {
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

static int key_known(const struct ab_snapshot *s, const char *key, size_t len)
{
    char buf[512];
    if (len == 0 || len >= sizeof(buf) || memchr(key, '\0', len) != NULL)
        return 0;
    memcpy(buf, key, len);
    buf[len] = '\0';
    char hash[65];
    ab_snapshot_key_hash(buf, hash);
    size_t lo = 0, hi = s->ningest_keys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(s->ingest_key_hashes[mid], hash);
        if (cmp == 0)
            return 1;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/*
 * The ingest key of a request: Authorization: Bearer KEY, Authorization: Basic base64(KEY:)
 * (what Segment's libraries send), or ?write_key=KEY (browsers' sendBeacon cannot set headers).
 */
static int authorized(struct ab_http_req *req, const struct ab_snapshot *s)
{
    size_t len = 0;
    const char *auth = ab_http_header(req, "authorization", &len);
    if (auth != NULL) {
        if (len > 7 && strncasecmp(auth, "Bearer ", 7) == 0)
            return key_known(s, auth + 7, len - 7);
        if (len > 6 && strncasecmp(auth, "Basic ", 6) == 0) {
            char user[512];
            if (b64_decode(auth + 6, len - 6, user, sizeof(user)) != 0)
                return 0;
            char *colon = strchr(user, ':');
            return key_known(s, user, colon != NULL ? (size_t)(colon - user) : strlen(user));
        }
        return 0;
    }
    const char *wk = ab_url_query_get(ab_http_query(req), "write_key");
    return wk != NULL && key_known(s, wk, strlen(wk));
}

/* ---------------------------------------------------------------- requests */

static void send_unavailable(struct collect_node *n, struct ab_http_req *req, enum unavailable why,
                             const char *message)
{
    atomic_fetch_add(&n->unavailable[why], 1);
    ab_http_add_header(req, "Retry-After", why == UNAV_OUTBOX_FULL ? "5" : "1");
    ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "%s", message);
}

static void respond(void *data)
{
    struct collect_batch *b = data;
    struct pending *p = b->owner;
    if (b->rc != AB_OK) {
        send_unavailable(p->node, p->req, UNAV_STORAGE,
                         "the events could not be stored (storage fault); nothing was "
                         "acknowledged, retry later");
        collect_batch_free(b);
        return;
    }
    json_t *rejected = json_array();
    size_t b_nrejected = b->nrejected;
    for (size_t i = 0; i < b->nrejected; i++) {
        const struct collect_rejection *r = &b->rejected[i];
        json_array_append_new(rejected,
                              json_pack("{s:I, s:s, s:s, s:s}", "index", (json_int_t)r->index,
                                        "code", collect_code_name(r->code), "field", r->field,
                                        "message", r->message));
    }
    json_t *doc = json_pack("{s:I, s:I, s:o}", "accepted", (json_int_t)b->accepted, "duplicates",
                            (json_int_t)b->duplicates, "rejected", rejected);
    collect_batch_free(b);
    if (doc == NULL || json_array_size(rejected) != b_nrejected) {
        /* the events are stored; only the answer could not be built (a bug): the client's
         * retry will be answered with duplicates */
        json_decref(doc);
        ab_http_send_error(p->req, AB_ERR_INTERNAL, NULL, "the answer could not be built");
        return;
    }
    ab_http_send_json(p->req, 200, doc);
}

static void done_cb(struct collect_batch *b)
{
    struct pending *p = b->owner;
    ab_http_post(p->node->srv, b->thread, respond, b);
}

static void handle(struct ab_http_req *req, struct collect_node *n, int segment)
{
    int slot = ab_http_thread(req);
    const struct ab_snapshot *snap = ab_holder_acquire(&n->holder, slot);
    if (snap == NULL) {
        ab_holder_release(&n->holder, slot);
        send_unavailable(n, req, UNAV_NOT_READY, "no snapshot loaded yet: ingest keys unknown");
        return;
    }
    if (!authorized(req, snap)) {
        ab_holder_release(&n->holder, slot);
        atomic_fetch_add(&n->unauthorized, 1);
        ab_http_add_header(req, "WWW-Authenticate", "Bearer");
        ab_http_send_error(req, AB_ERR_UNAUTHORIZED, "authorization",
                           "a valid ingest key is required (Authorization: Bearer KEY or "
                           "?write_key=KEY)");
        return;
    }
    enum collect_format format;
    if (ab_http_content_type_is(req, "application/json")) {
        format = segment ? COLLECT_FORMAT_SEGMENT : COLLECT_FORMAT_JSON;
    } else if (!segment && (ab_http_content_type_is(req, "application/x-ndjson") ||
                            ab_http_content_type_is(req, "application/ndjson"))) {
        format = COLLECT_FORMAT_NDJSON;
    } else {
        ab_holder_release(&n->holder, slot);
        atomic_fetch_add(&n->refused[-AB_ERR_UNSUPPORTED_MEDIA], 1);
        ab_http_send_unsupported_media(req, segment ? "application/json"
                                                    : "application/json or application/x-ndjson");
        return;
    }
    size_t len;
    const char *body = ab_http_body(req, &len);
    struct collect_batch *b = NULL;
    struct ab_errinfo ei;
    enum ab_err rc =
        collect_parse(body, len, format, snap, ab_clock_now_ms(n->cfg.clock), &b, &ei);
    ab_holder_release(&n->holder, slot);
    if (rc != AB_OK) {
        atomic_fetch_add(&n->refused[-rc], 1);
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    /* the outbox quota: the backlog may pass it by what the writer's queue holds */
    if (n->forward != NULL && b->nevents > 0 &&
        collect_forward_backlog(n->forward) + (int64_t)b->nevents >
            (int64_t)n->cfg.outbox_max_events) {
        collect_batch_free(b);
        send_unavailable(n, req, UNAV_OUTBOX_FULL,
                         "the outbox of events not yet forwarded to ClickHouse is full; nothing "
                         "was stored, retry later");
        return;
    }
    struct pending *p = ab_http_alloc(req, sizeof(*p));
    p->req = req;
    p->node = n;
    b->owner = p;
    b->thread = ab_http_thread(req);
    b->done_cb = done_cb;
    if (collect_store_submit(n->store, b) != AB_OK) {
        collect_batch_free(b);
        send_unavailable(n, req, UNAV_QUEUE_FULL,
                         "the collector is behind; nothing was stored, retry later");
    }
}

static void handle_events(struct ab_http_req *req, void *data)
{
    handle(req, data, 0);
}

static void handle_batch(struct ab_http_req *req, void *data)
{
    handle(req, data, 1);
}

/* ---------------------------------------------------------------- readiness and metrics */

static int ready_cb(void *data, char *reason, size_t len)
{
    struct collect_node *n = data;
    if (ab_follower_version(n->follower) > 0)
        return 1;
    snprintf(reason, len, "collector: no valid snapshot loaded yet from %s",
             ab_follower_source(n->follower));
    return 0;
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void metrics_cb(void *data, FILE *out)
{
    struct collect_node *n = data;
    if (n->store == NULL)
        return;
    struct collect_stats *s = collect_store_stats(n->store);
    fprintf(out,
            "# HELP abacus_collect_events_accepted_total Events stored (committed).\n"
            "# TYPE abacus_collect_events_accepted_total counter\n"
            "abacus_collect_events_accepted_total %llu\n"
            "# HELP abacus_collect_events_duplicate_total Events whose id was already stored "
            "(conflicting ones included).\n"
            "# TYPE abacus_collect_events_duplicate_total counter\n"
            "abacus_collect_events_duplicate_total %llu\n"
            "# HELP abacus_collect_events_conflicting_duplicate_total Events whose id was "
            "already stored with another payload (the first was kept).\n"
            "# TYPE abacus_collect_events_conflicting_duplicate_total counter\n"
            "abacus_collect_events_conflicting_duplicate_total %llu\n"
            "# HELP abacus_collect_events_rejected_total Invalid events stored in "
            "rejected_events, by code.\n"
            "# TYPE abacus_collect_events_rejected_total counter\n",
            (unsigned long long)get(&s->accepted), (unsigned long long)get(&s->duplicates),
            (unsigned long long)get(&s->conflicts));
    for (int c = 0; c < COLLECT_CODE_COUNT; c++)
        fprintf(out, "abacus_collect_events_rejected_total{code=\"%s\"} %llu\n",
                collect_code_name((enum collect_code)c),
                (unsigned long long)get(&s->rejected[c]));
    fputs("# HELP abacus_collect_unavailable_total Requests answered 503, by reason.\n"
          "# TYPE abacus_collect_unavailable_total counter\n",
          out);
    for (int u = 0; u < UNAV_COUNT; u++)
        fprintf(out, "abacus_collect_unavailable_total{reason=\"%s\"} %llu\n", UNAV_NAMES[u],
                (unsigned long long)get(&n->unavailable[u]));
    fputs("# HELP abacus_collect_requests_refused_total Whole requests refused, by error.\n"
          "# TYPE abacus_collect_requests_refused_total counter\n",
          out);
    fprintf(out, "abacus_collect_requests_refused_total{code=\"unauthorized\"} %llu\n",
            (unsigned long long)get(&n->unauthorized));
    for (int e = 1; e < AB_ERR_COUNT; e++)
        if (get(&n->refused[e]) > 0)
            fprintf(out, "abacus_collect_requests_refused_total{code=\"%s\"} %llu\n",
                    ab_err_code((enum ab_err)-e), (unsigned long long)get(&n->refused[e]));
    fprintf(out,
            "# HELP abacus_collect_queue_events Events waiting for the writer.\n"
            "# TYPE abacus_collect_queue_events gauge\nabacus_collect_queue_events %llu\n"
            "# HELP abacus_collect_commit_events Events of the group commit in progress.\n"
            "# TYPE abacus_collect_commit_events gauge\nabacus_collect_commit_events %llu\n"
            "# HELP abacus_collect_commits_total Group commits.\n"
            "# TYPE abacus_collect_commits_total counter\nabacus_collect_commits_total %llu\n"
            "# HELP abacus_collect_storage_errors_total Transactions rolled back by a storage "
            "fault.\n# TYPE abacus_collect_storage_errors_total counter\n"
            "abacus_collect_storage_errors_total %llu\n"
            "# HELP abacus_collect_commit_duration_seconds Time of one group commit "
            "(BEGIN to COMMIT).\n# TYPE abacus_collect_commit_duration_seconds histogram\n",
            (unsigned long long)get(&s->queue_events),
            (unsigned long long)get(&s->commit_events), (unsigned long long)get(&s->commits),
            (unsigned long long)get(&s->storage_errors));
    uint64_t cumulative = 0;
    for (int b = 0; b <= COLLECT_LAT_BUCKETS; b++) {
        cumulative += get(&s->lat_bucket[b]);
        if (b < COLLECT_LAT_BUCKETS)
            fprintf(out, "abacus_collect_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    (double)collect_lat_bounds[b] / 1e9, (unsigned long long)cumulative);
        else
            fprintf(out, "abacus_collect_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cumulative);
    }
    fprintf(out,
            "abacus_collect_commit_duration_seconds_sum %.9f\n"
            "abacus_collect_commit_duration_seconds_count %llu\n",
            (double)get(&s->lat_sum_ns) / 1e9, (unsigned long long)cumulative);
    if (n->follower != NULL)
        ab_follower_metrics(n->follower, out);
    if (n->forward != NULL)
        collect_forward_metrics(n->forward, out);
}

/* ---------------------------------------------------------------- lifecycle */

enum ab_err collect_node_new(const struct collect_node_config *cfg, struct collect_node **out,
                             struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->db_path == NULL || cfg->db_path[0] == '\0')
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "db", "is required");
    struct collect_node *n = ab_mem_calloc(1, sizeof(*n));
    n->cfg = *cfg;
    n->db_path = ab_mem_strdup(cfg->db_path);
    n->cfg.db_path = n->db_path;
    if (cfg->forward_url != NULL)
        n->forward_url = ab_mem_strdup(cfg->forward_url);
    n->cfg.forward_url = n->forward_url;
    if (n->cfg.outbox_max_events == 0)
        n->cfg.outbox_max_events = 10000000;
    if (n->cfg.clock == NULL)
        n->cfg.clock = &ab_clock_system;
    n->cfg.snapshot = (struct ab_follower_source){0}; /* the follower's */
    if (ab_follower_source_given(&cfg->snapshot)) {
        struct ab_follower_config fc = {.source = cfg->snapshot,
                                        .metrics_prefix = "abacus_collect_snapshot",
                                        .component = "collect",
                                        .ready = node_ready,
                                        .data = n,
                                        .log = cfg->log,
                                        .clock = n->cfg.clock};
        enum ab_err rc = ab_follower_new(&fc, &n->follower, ei);
        if (rc != AB_OK) {
            collect_node_free(n);
            return rc;
        }
    }
    *out = n;
    return AB_OK;
}

enum ab_err collect_node_mount(struct collect_node *n, struct ab_http_server *srv,
                               struct ab_errinfo *ei)
{
    n->srv = srv;
    ab_holder_init(&n->holder, ab_http_server_threads(srv), snapshot_free);
    enum ab_err rc;
    if ((rc = ab_http_route(srv, "POST", "/v1/events", handle_events, n, COLLECT_BODY_MAX,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/v1/batch", handle_batch, n, COLLECT_BODY_MAX, ei)) !=
            AB_OK)
        return rc;
    if (n->follower != NULL) /* without one (abacus up alone) every POST answers 503 */
        ab_http_add_ready_check(srv, ready_cb, n);
    ab_http_add_metrics(srv, metrics_cb, n);
    return AB_OK;
}

enum ab_err collect_node_start(struct collect_node *n, struct ab_errinfo *ei)
{
    struct collect_store_config sc = {.path = n->db_path,
                                      .queue_max_events = n->cfg.queue_max_events,
                                      .log = n->cfg.log,
                                      .clock = n->cfg.clock};
    enum ab_err rc = collect_store_open(&sc, &n->store, ei);
    if (rc != AB_OK)
        return rc;
    AB_LOG_I(n->cfg.log, "collect_db", "path=%s", n->db_path);
    if (n->forward_url != NULL) {
        struct collect_forward_config fc = {.url = n->forward_url,
                                            .db_path = n->db_path,
                                            .batch_max = n->cfg.forward_batch,
                                            .retention_ms = n->cfg.retention_ms,
                                            .outbox_max_events = n->cfg.outbox_max_events,
                                            .store = n->store,
                                            .log = n->cfg.log,
                                            .clock = n->cfg.clock};
        if ((rc = collect_forward_start(&fc, &n->forward, ei)) != AB_OK)
            return rc;
    }
    return n->follower != NULL ? ab_follower_start(n->follower, ei) : AB_OK;
}

void collect_node_poke(struct collect_node *n)
{
    if (n->follower != NULL)
        ab_follower_poke(n->follower);
}

void collect_node_stop(struct collect_node *n)
{
    if (n == NULL)
        return;
    ab_follower_stop(n->follower);
    collect_forward_stop(n->forward);
    n->forward = NULL;
    collect_store_close(n->store);
    n->store = NULL;
}

void collect_node_free(struct collect_node *n)
{
    if (n == NULL)
        return;
    collect_node_stop(n);
    ab_follower_free(n->follower);
    ab_holder_dispose(&n->holder);
    free(n->db_path);
    free(n->forward_url);
    free(n);
}
