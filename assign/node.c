/*
 * The assign node: holds the current compiled snapshot, swaps in newer ones, and answers the
 * assignment API (DESIGN.md section 4.3) from it.
 *
 * Swapping without a lock on the request path: a request announces the snapshot it uses in its
 * worker thread's hazard slot (store, then re-check that it is still current); the watcher
 * thread publishes a new snapshot with one atomic exchange and releases the old one only when no
 * slot names it. Requests never wait; the watcher does, for at most one request's duration.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "abacus/json.h"
#include "abacus/jsonw.h"
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "assign.h"
#include "assign_int.h"

#define UNIT_MAX 256          /* longest unit id, bytes */
#define ATTR_MAX 32           /* attributes in one GET request */
#define POST_BODY_MAX ((size_t)64 * 1024)
#define RESPONSE_MAX ((size_t)16 * 1024 * 1024) /* an answer larger than this is a 500 */

enum reject_reason { REJECT_IO, REJECT_INVALID, REJECT_OLDER, REJECT_COUNT };
static const char *const REJECT_NAMES[REJECT_COUNT] = {"io", "invalid", "older_version"};

struct assign_node {
    char *path;
    int poll_interval_ms;
    const struct ab_log *log;
    const struct ab_clock *clock;
    _Atomic(struct assign_snap *) current;
    _Atomic(struct assign_snap *) *hazards; /* one per HTTP worker thread */
    int nhazards;
    pthread_t watcher;
    int watcher_started;
    _Atomic int stop;
    struct stat seen;             /* the file as last tried (watcher thread only) */
    _Atomic int64_t version;      /* current snapshot version, 0 = none */
    _Atomic int64_t created_at;   /* its created_at, ms */
    _Atomic uint64_t loads;
    _Atomic uint64_t rejected[REJECT_COUNT];
};

/* ---------------------------------------------------------------- snapshot holder */

static struct assign_snap *acquire(struct assign_node *n, int slot)
{
    struct assign_snap *p;
    do {
        p = atomic_load(&n->current);
        atomic_store(&n->hazards[slot], p);
    } while (atomic_load(&n->current) != p);
    return p;
}

static void release(struct assign_node *n, int slot)
{
    atomic_store(&n->hazards[slot], NULL);
}

/* Publishes snap (taking over its reference) and releases the previous one once unused. */
static void publish(struct assign_node *n, struct assign_snap *snap)
{
    struct assign_snap *old = atomic_exchange(&n->current, snap);
    atomic_store(&n->version, snap->version);
    atomic_store(&n->created_at, snap->created_at);
    atomic_fetch_add(&n->loads, 1);
    if (old == NULL)
        return;
    for (int i = 0; i < n->nhazards; i++)
        while (atomic_load(&n->hazards[i]) == old) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    assign_snap_release(old);
}

static void reject(struct assign_node *n, enum reject_reason r, const char *message)
{
    atomic_fetch_add(&n->rejected[r], 1);
    AB_LOG_W(n->log, "snapshot_rejected", "file=%s reason=%s message=\"%s\"", n->path,
             REJECT_NAMES[r], message);
}

/* Loads the file if it changed since the last try and is newer than what is served. */
static void check_file(struct assign_node *n)
{
    struct stat st;
    if (stat(n->path, &st) != 0) {
        if (n->seen.st_size != -1) { /* report a missing file once, not every poll */
            char msg[256];
            snprintf(msg, sizeof(msg), "cannot stat: %s", strerror(errno));
            reject(n, REJECT_IO, msg);
            memset(&n->seen, 0, sizeof(n->seen));
            n->seen.st_size = -1;
        }
        return;
    }
    if (st.st_ino == n->seen.st_ino && st.st_size == n->seen.st_size &&
        st.st_mtim.tv_sec == n->seen.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == n->seen.st_mtim.tv_nsec)
        return;
    n->seen = st;
    struct ab_snapshot *s = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_snapshot_read(n->path, &s, &ei);
    if (rc != AB_OK) {
        reject(n, rc == AB_ERR_IO ? REJECT_IO : REJECT_INVALID, ei.message);
        return;
    }
    int64_t current = atomic_load(&n->version);
    if (s->version <= current) {
        char msg[128];
        snprintf(msg, sizeof(msg), "version %lld is not newer than %lld", (long long)s->version,
                 (long long)current);
        reject(n, REJECT_OLDER, msg);
        ab_snapshot_free(s);
        return;
    }
    struct assign_snap *snap = NULL;
    int64_t t0 = ab_clock_mono_ns(n->clock);
    rc = assign_snap_compile(s, &snap, &ei);
    size_t nexp = s->nexperiments;
    ab_snapshot_free(s);
    if (rc != AB_OK) {
        reject(n, REJECT_INVALID, ei.message);
        return;
    }
    publish(n, snap);
    AB_LOG_I(n->log, "snapshot_loaded", "file=%s version=%lld experiments=%zu compile_ms=%.1f",
             n->path, (long long)snap->version, nexp,
             (double)(ab_clock_mono_ns(n->clock) - t0) / 1e6);
}

static void *watcher_main(void *arg)
{
    struct assign_node *n = arg;
    while (!atomic_load(&n->stop)) {
        for (int waited = 0; waited < n->poll_interval_ms && !atomic_load(&n->stop);
             waited += 50) {
            struct timespec ts = {0, 50L * 1000000};
            nanosleep(&ts, NULL);
        }
        if (!atomic_load(&n->stop))
            check_file(n);
    }
    return NULL;
}

/* ---------------------------------------------------------------- answers */

/*
 * One assignment as the API reports it: this is the hot path, so it copies the pieces the
 * snapshot compiled for e (assign_int.h) around the unit (unit_json: the unit as a JSON string,
 * written once per request), the hash and the reason.
 */
static void write_assignment(struct ab_jsonw *w, const struct assign_entry *e,
                             const struct ab_jsonw *unit_json, const struct assign_result *res)
{
#define TEXT(t) ab_jsonw_raw(w, (t).p, (t).len)
#define KEY(k) ab_jsonw_raw(w, k, sizeof(k) - 1)
    TEXT(e->head);
    ab_jsonw_raw(w, unit_json->buf, unit_json->len);
    if (res->in_experiment)
        KEY(",\"in_experiment\":true");
    else
        KEY(",\"in_experiment\":false");
    TEXT(e->variant[res->variation]);
    if (res->hash_used)
        ab_jsonw_double(w, res->bucket);
    else
        KEY("null");
    TEXT(e->payload[res->variation]);
    const char *reason = assign_reason_name(res->reason); /* snake_case: nothing to escape */
    ab_jsonw_raw(w, reason, strlen(reason));
    TEXT(e->tail);
#undef KEY
#undef TEXT
}

/* unit as a JSON string into *out (the caller disposes it). */
static void unit_json(struct ab_jsonw *out, const char *unit)
{
    ab_jsonw_init(out, (size_t)8 * UNIT_MAX);
    ab_jsonw_str(out, unit, strlen(unit));
}

/* Sends what w holds, or a 500 when it outgrew its cap. Disposes w. */
static void send_written(struct ab_http_req *req, struct ab_jsonw *w)
{
    if (w->failed)
        ab_http_send_error(req, AB_ERR_INTERNAL, NULL, "the answer exceeds %zu bytes", w->max);
    else
        ab_http_send(req, 200, "application/json", w->buf, w->len);
    ab_jsonw_dispose(w);
}

static void evaluate(const struct assign_entry *e, const struct assign_attrs *attrs,
                     struct assign_result *res)
{
    struct assign_context ctx = {.attributes = attrs->obj, .index = attrs};
    assign_run(e->exp, &ctx, res);
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
        const char **slot = strcmp(p->name, "experiment") == 0 ? experiment
                            : strcmp(p->name, "unit") == 0     ? unit
                                                               : NULL;
        if (slot != NULL) {
            if (*slot != NULL) {
                ab_http_send_error(req, AB_ERR_INVALID_FIELD, p->name, "must be given once");
                return -1;
            }
            *slot = p->value;
            continue;
        }
        if (strncmp(p->name, "attr.", 5) != 0 || p->name_len == 5 ||
            strcmp(p->name, "attr.id") == 0) {
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
    if (ulen == 0 || ulen > UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be 1 to %d bytes", UNIT_MAX);
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
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap)) {
        const struct assign_entry *e = assign_snap_find(snap, experiment);
        if (e == NULL) {
            ab_http_send_error(req, AB_ERR_NOT_FOUND, "experiment", "no experiment %s", experiment);
        } else {
            struct assign_attrs index;
            assign_attrs_index(&index, attrs);
            struct assign_result res;
            evaluate(e, &index, &res);
            struct ab_jsonw w, u;
            ab_jsonw_init(&w, RESPONSE_MAX);
            unit_json(&u, unit);
            write_assignment(&w, e, &u, &res);
            ab_jsonw_dispose(&u);
            send_written(req, &w);
        }
    }
    release(n, slot);
    json_decref(attrs);
}

/* Parses a POST body as a JSON object; answers 400/413/415 itself on failure. */
static json_t *read_json_body(struct ab_http_req *req)
{
    size_t ctlen = 0;
    const char *ct = ab_http_header(req, "content-type", &ctlen);
    if (ct == NULL || strncmp(ct, "application/json", 16) != 0) {
        ab_http_send_error(req, AB_ERR_UNSUPPORTED_MEDIA, "content-type",
                           "send the body as application/json");
        return NULL;
    }
    size_t len;
    const char *body = ab_http_body(req, &len);
    struct ab_json_limits lim = {POST_BODY_MAX, 16};
    json_t *doc;
    struct ab_errinfo ei;
    enum ab_err rc = ab_json_parse(body, len, &lim, &doc, &ei);
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
        return NULL;
    }
    return doc;
}

/* Validates a POST /v1/assign body; answers 400 itself and returns -1 on failure. */
static int check_post(struct ab_http_req *req, json_t *doc, const char **unit, json_t **attrs)
{
    const json_t *u = json_object_get(doc, "unit");
    if (!json_is_string(u) || json_string_length(u) == 0 || json_string_length(u) > UNIT_MAX) {
        ab_http_send_error(req, AB_ERR_INVALID_FIELD, "unit", "must be a string of 1 to %d bytes",
                           UNIT_MAX);
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

static void handle_post_assign(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *doc = read_json_body(req);
    const char *unit;
    json_t *attrs = NULL;
    if (doc == NULL || check_post(req, doc, &unit, &attrs) != 0) {
        json_decref(doc);
        return;
    }
    int slot = ab_http_thread(req);
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap)) {
        struct assign_attrs index;
        assign_attrs_index(&index, attrs);
        struct ab_jsonw w, u;
        ab_jsonw_init(&w, RESPONSE_MAX);
        unit_json(&u, unit);
        ab_jsonw_raw(&w, "{\"snapshot_version\":", 20);
        ab_jsonw_int(&w, snap->version);
        ab_jsonw_raw(&w, ",\"assignments\":[", 16);
        const json_t *list = json_object_get(doc, "experiments");
        size_t count = json_is_array(list) ? json_array_size(list) : snap->nrunning;
        ab_jsonw_reserve(&w, count * (u.len + 256)); /* about what an item takes */
        int failed = 0;
        for (size_t i = 0; i < count && !failed; i++) {
            const struct assign_entry *e;
            if (json_is_array(list)) {
                const char *key = json_string_value(json_array_get(list, i));
                if ((e = assign_snap_find(snap, key)) == NULL) {
                    char field[48];
                    snprintf(field, sizeof(field), "experiments[%zu]", i);
                    ab_http_send_error(req, AB_ERR_NOT_FOUND, field, "no experiment %s", key);
                    failed = 1;
                    break;
                }
            } else {
                e = &snap->entries[snap->running[i]];
            }
            struct assign_result res;
            evaluate(e, &index, &res);
            if (i > 0)
                ab_jsonw_raw(&w, ",", 1);
            write_assignment(&w, e, &u, &res);
        }
        ab_jsonw_raw(&w, "]}", 2);
        ab_jsonw_dispose(&u);
        if (failed)
            ab_jsonw_dispose(&w);
        else
            send_written(req, &w);
    }
    release(n, slot);
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
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        ab_http_add_header(req, "ETag", snap->etag);
        ab_http_add_header(req, "Cache-Control", "public, max-age=5");
        const char *inm = ab_http_header(req, "if-none-match", NULL);
        if (inm != NULL && strstr(inm, snap->etag) != NULL)
            ab_http_send(req, 304, "application/json", "", 0);
        else
            ab_http_send(req, 200, "application/json", snap->features_body, snap->features_len);
    }
    release(n, slot);
}

/* One feature evaluated for a unit, as a FeatureDefinition the SDK evaluates to the same. */
static json_t *evaluated_feature(const json_t *result)
{
    json_t *value = json_object_get(result, "value");
    json_t *exp = json_object_get(result, "experiment");
    json_t *rules = json_array();
    if (exp != NULL)
        json_array_append_new(
            rules, json_pack("{s:O, s:[{s:O, s:O}]}", "force", value, "tracks", "experiment", exp,
                             "result", json_object_get(result, "experimentResult")));
    return json_pack("{s:O, s:o}", "defaultValue", value, "rules", rules);
}

static void handle_eval(struct ab_http_req *req, void *data)
{
    struct assign_node *n = data;
    json_t *doc = read_json_body(req);
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
    struct assign_snap *snap = acquire(n, slot);
    if (!not_ready(req, snap) && client_key_ok(req, snap)) {
        struct assign_context ctx = {
            .attributes = json_is_object(attrs) ? attrs : NULL,
            .forced_variations = json_is_object(forced) ? forced : NULL,
            .url = json_is_string(url) && json_string_length(url) > 0 ? json_string_value(url)
                                                                     : NULL,
        };
        json_t *features = json_object();
        const char *key;
        const json_t *def;
        json_object_foreach(snap->gb_features, key, def)
        {
            (void)def;
            json_t *r = assign_feature_eval(snap->gb_features, key, &ctx);
            json_object_set_new(features, key, evaluated_feature(r));
            json_decref(r);
        }
        ab_http_send_json(req, 200,
                          json_pack("{s:o, s:[], s:I}", "features", features, "experiments",
                                    "snapshotVersion", (json_int_t)snap->version));
    }
    release(n, slot);
    json_decref(doc);
}

/* ---------------------------------------------------------------- readiness and metrics */

static int ready_cb(void *data, char *reason, size_t len)
{
    struct assign_node *n = data;
    if (atomic_load(&n->version) > 0)
        return 1;
    snprintf(reason, len, "no valid snapshot loaded yet from %s", n->path);
    return 0;
}

static void metrics_cb(void *data, FILE *out)
{
    struct assign_node *n = data;
    int64_t version = atomic_load(&n->version);
    fprintf(out,
            "# HELP abacus_snapshot_version Version of the snapshot being served (0: none).\n"
            "# TYPE abacus_snapshot_version gauge\nabacus_snapshot_version %lld\n",
            (long long)version);
    if (version > 0)
        fprintf(out,
                "# HELP abacus_snapshot_age_seconds Time since the served snapshot was "
                "written.\n# TYPE abacus_snapshot_age_seconds gauge\n"
                "abacus_snapshot_age_seconds %.3f\n",
                (double)(ab_clock_now_ms(n->clock) - atomic_load(&n->created_at)) / 1000.0);
    fprintf(out,
            "# HELP abacus_snapshot_loads_total Snapshots loaded and swapped in.\n"
            "# TYPE abacus_snapshot_loads_total counter\nabacus_snapshot_loads_total %llu\n"
            "# HELP abacus_snapshot_rejected_total Snapshot files refused, by reason.\n"
            "# TYPE abacus_snapshot_rejected_total counter\n",
            (unsigned long long)atomic_load(&n->loads));
    for (int r = 0; r < REJECT_COUNT; r++)
        fprintf(out, "abacus_snapshot_rejected_total{reason=\"%s\"} %llu\n", REJECT_NAMES[r],
                (unsigned long long)atomic_load(&n->rejected[r]));
}

/* ---------------------------------------------------------------- lifecycle */

enum ab_err assign_node_new(const struct assign_node_config *cfg, struct assign_node **out,
                            struct ab_errinfo *ei)
{
    if (cfg->snapshot_file == NULL || cfg->snapshot_file[0] == '\0')
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "snapshot-file", "is required");
    struct assign_node *n = ab_mem_calloc(1, sizeof(*n));
    n->path = ab_mem_strdup(cfg->snapshot_file);
    n->poll_interval_ms = cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 5000;
    n->log = cfg->log;
    n->clock = cfg->clock != NULL ? cfg->clock : &ab_clock_system;
    *out = n;
    return AB_OK;
}

enum ab_err assign_node_mount(struct assign_node *n, struct ab_http_server *srv,
                              struct ab_errinfo *ei)
{
    n->nhazards = ab_http_server_threads(srv);
    n->hazards = ab_mem_calloc((size_t)n->nhazards, sizeof(*n->hazards));
    enum ab_err rc;
    if ((rc = ab_http_route(srv, "GET", "/v1/assign", handle_get_assign, n, 0, ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/v1/assign", handle_post_assign, n, POST_BODY_MAX,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "GET", "/api/features/{clientKey}", handle_features, n, 0,
                            ei)) != AB_OK ||
        (rc = ab_http_route(srv, "POST", "/api/eval/{clientKey}", handle_eval, n, POST_BODY_MAX,
                            ei)) != AB_OK)
        return rc;
    ab_http_add_ready_check(srv, ready_cb, n);
    ab_http_add_metrics(srv, metrics_cb, n);
    return AB_OK;
}

enum ab_err assign_node_start(struct assign_node *n, struct ab_errinfo *ei)
{
    check_file(n);
    if (pthread_create(&n->watcher, NULL, watcher_main, n) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the snapshot watcher");
    n->watcher_started = 1;
    return AB_OK;
}

void assign_node_stop(struct assign_node *n)
{
    if (n == NULL || !n->watcher_started)
        return;
    atomic_store(&n->stop, 1);
    pthread_join(n->watcher, NULL);
    n->watcher_started = 0;
}

void assign_node_free(struct assign_node *n)
{
    if (n == NULL)
        return;
    assign_node_stop(n);
    assign_snap_release(atomic_load(&n->current));
    free(n->hazards);
    free(n->path);
    free(n);
}
