/*
 * The snapshot routes: publishing by hand and the history (admin API), and the public routes that
 * assign nodes, collectors and HTTP caches fetch: GET /v1/snapshots/latest (the manifest, with an
 * ETag and the configured max-age) and /v1/snapshots/{version}.db (immutable files). The
 * publisher's counters go to /metrics.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "abacus/mem.h"
#include "api.h"

#define SNAPSHOT_FILE_MAX ((int64_t)1 << 30) /* largest snapshot file served, bytes */

/* The manifest (docs/snapshot.md): version, sha256, size, url. */
static json_t *manifest(const struct web_snapshot_row *r)
{
    char url[64];
    snprintf(url, sizeof(url), "/v1/snapshots/%lld.db", (long long)r->version);
    return json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t)r->version, "sha256", r->sha256,
                     "size", (json_int_t)r->size, "url", url);
}

static void handle_publish(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_EDITOR);
    if (db == NULL)
        return;
    struct web_snapshot_row row = {0};
    struct ab_errinfo ei;
    enum ab_err rc = web_publish(w, db, &who, &row, &ei);
    json_t *out = NULL;
    if (rc == AB_OK) {
        out = manifest(&row);
        json_object_set_new(out, "created_at", json_integer(row.created_at));
    }
    web_send_result(req, rc, 201, out, &ei);
}

static void handle_snapshot_list(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct web_actor who;
    struct ab_db *db = web_begin(req, w, &who, WEB_ROLE_VIEWER);
    if (db == NULL)
        return;
    json_t *out = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = web_snapshot_list(w, db, &out, &ei);
    web_send_result(req, rc, 200, out, &ei);
}

/* 1 when the request's If-None-Match names etag (or is *). */
static int not_modified(struct ab_http_req *req, const char *etag)
{
    size_t len = 0;
    const char *inm = ab_http_header(req, "if-none-match", &len);
    if (inm == NULL)
        return 0;
    return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

static void handle_manifest(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    struct ab_errinfo ei;
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_snapshot_row row = {0};
    int found = 0;
    enum ab_err rc = db != NULL ? web_snapshot_latest(db, &row, &found, &ei) : AB_ERR_UNAVAILABLE;
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    if (!found) {
        ab_http_add_header(req, "Retry-After", "1");
        ab_http_send_error(req, AB_ERR_UNAVAILABLE, NULL, "nothing published yet");
        return;
    }
    char etag[48], cc[64];
    snprintf(etag, sizeof(etag), "\"%lld-%.16s\"", (long long)row.version, row.sha256);
    if (w->cfg.manifest_max_age_s > 0)
        snprintf(cc, sizeof(cc), "public, max-age=%d", w->cfg.manifest_max_age_s);
    else
        snprintf(cc, sizeof(cc), "no-cache");
    ab_http_add_header(req, "ETag", etag);
    ab_http_add_header(req, "Cache-Control", cc);
    if (not_modified(req, etag)) {
        ab_http_send(req, 304, "application/json", "", 0);
        return;
    }
    ab_http_send_json(req, 200, manifest(&row));
}

/* Parses "<version>.db" (a positive decimal without leading zeros). */
static int parse_file_name(const char *name, int64_t *version)
{
    size_t n = strlen(name);
    if (n < 4 || n > 22 || strcmp(name + n - 3, ".db") != 0 || name[0] < '1' || name[0] > '9')
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n - 3; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    *version = v;
    return 0;
}

static void handle_snapshot_file(struct ab_http_req *req, void *data)
{
    struct web *w = data;
    int64_t version = 0;
    if (parse_file_name(ab_http_param(req, "file"), &version) != 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "version", "no such snapshot file");
        return;
    }
    struct ab_errinfo ei;
    struct ab_db *db = web_db(w, ab_http_thread(req), &ei);
    struct web_snapshot_row row = {0};
    int found = 0;
    enum ab_err rc =
        db != NULL ? web_snapshot_get(db, version, &row, &found, &ei) : AB_ERR_UNAVAILABLE;
    if (rc != AB_OK) {
        ab_http_send_errinfo(req, rc, &ei);
        return;
    }
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", w->data_dir, row.path);
    int fd = found ? open(full, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        ab_http_send_error(req, AB_ERR_NOT_FOUND, "version",
                           found ? "snapshot %lld is no longer kept" : "no snapshot %lld",
                           (long long)version);
        return;
    }
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%s\"", row.sha256);
    ab_http_add_header(req, "ETag", etag);
    ab_http_add_header(req, "Cache-Control", "public, max-age=31536000, immutable");
    if (not_modified(req, etag)) {
        close(fd);
        ab_http_send(req, 304, "application/vnd.sqlite3", "", 0);
        return;
    }
    struct stat st;
    char *buf = NULL;
    int ok = fstat(fd, &st) == 0 && st.st_size == row.size && row.size <= SNAPSHOT_FILE_MAX;
    if (ok) {
        buf = ab_mem_calloc(1, (size_t)row.size + 1);
        size_t got = 0;
        while (got < (size_t)row.size) {
            ssize_t r = read(fd, buf + got, (size_t)row.size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        ok = got == (size_t)row.size;
    }
    close(fd);
    if (!ok)
        ab_http_send_error(req, AB_ERR_IO, NULL, "snapshot %lld cannot be read whole",
                           (long long)version);
    else
        ab_http_send(req, 200, "application/vnd.sqlite3", buf, (size_t)row.size);
    free(buf);
}

static void metrics_cb(void *data, FILE *out)
{
    struct web *w = data;
    fprintf(out,
            "# HELP abacus_publisher_version Newest snapshot version this control plane "
            "published.\n# TYPE abacus_publisher_version gauge\nabacus_publisher_version %lld\n"
            "# HELP abacus_publisher_publishes_total Snapshots published.\n"
            "# TYPE abacus_publisher_publishes_total counter\n"
            "abacus_publisher_publishes_total %llu\n"
            "# HELP abacus_publisher_failures_total Publishes that failed.\n"
            "# TYPE abacus_publisher_failures_total counter\n"
            "abacus_publisher_failures_total %llu\n",
            (long long)atomic_load(&w->published_version),
            (unsigned long long)atomic_load(&w->publishes),
            (unsigned long long)atomic_load(&w->publish_failures));
}

enum ab_err web_snapshot_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei)
{
    static const struct web_route ROUTES[] = {
        {"GET", "/api/v1/snapshots", handle_snapshot_list, 0},
        {"POST", "/api/v1/snapshots", handle_publish, 0},
        {"GET", "/v1/snapshots/latest", handle_manifest, 0},
        {"GET", "/v1/snapshots/{file}", handle_snapshot_file, 0},
    };
    ab_http_add_metrics(srv, metrics_cb, w);
    return WEB_ROUTES_MOUNT(w, srv, ROUTES, ei);
}
