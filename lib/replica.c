/*
 * The replication transport: the manifest an origin or a mirror serves at /v1/snapshots/latest
 * (parsed and checked), and two libcurl transfers, the manifest (conditional on its ETag) and a
 * snapshot file streamed to disk with its size capped and its SHA-256 computed on the way. No
 * decisions here: the follower (lib/follower.c) decides what to fetch, what to accept and what to
 * count. The manifest parser is fuzzed by tests/fuzz/fuzz_manifest.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "abacus/json.h"
#include "abacus/replica.h"
#include "abacus/version.h"

enum ab_err ab_replica_manifest_parse(const char *buf, size_t len, struct ab_replica_manifest *out,
                                  struct ab_errinfo *ei)
{
    memset(out, 0, sizeof(*out));
    struct ab_json_limits lim = {AB_REPLICA_MANIFEST_MAX, 4};
    json_t *doc = NULL;
    enum ab_err rc = ab_json_parse(buf, len, &lim, &doc, ei);
    if (rc != AB_OK)
        return AB_ERR_INVALID_JSON;
    const json_t *v = json_object_get(doc, "version"), *sha = json_object_get(doc, "sha256"),
                 *size = json_object_get(doc, "size"), *url = json_object_get(doc, "url");
    if (!json_is_object(doc))
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "manifest", "must be a JSON object");
    else if (!json_is_integer(v) || json_integer_value(v) <= 0)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "version", "must be a positive integer");
    else if (!json_is_string(sha) || json_string_length(sha) != 64 ||
             strspn(json_string_value(sha), "0123456789abcdef") != 64)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "sha256", "must be 64 lowercase hex digits");
    else if (!json_is_integer(size) || json_integer_value(size) <= 0)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "size", "must be a positive integer");
    else if (!json_is_string(url) || json_string_length(url) == 0 ||
             json_string_length(url) >= sizeof(out->url) ||
             strlen(json_string_value(url)) != json_string_length(url))
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "must be a URL of at most %zu bytes",
                     sizeof(out->url) - 1);
    if (rc == AB_OK) {
        for (const char *p = json_string_value(url); *p != '\0'; p++)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
                rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "must not contain spaces or "
                                                              "control characters");
                break;
            }
    }
    if (rc == AB_OK) {
        out->version = json_integer_value(v);
        memcpy(out->sha256, json_string_value(sha), 65);
        out->size = json_integer_value(size);
        memcpy(out->url, json_string_value(url), json_string_length(url) + 1);
    }
    json_decref(doc);
    return rc;
}

/* ---------------------------------------------------------------- transfers */

struct body_sink {
    char *buf;
    size_t len, cap; /* cap: the most that is kept; more aborts the transfer */
    int overflow;
};

static size_t body_write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct body_sink *b = arg;
    size_t bytes = size * n;
    if (b->len + bytes > b->cap) {
        b->overflow = 1;
        return 0;
    }
    memcpy(b->buf + b->len, data, bytes);
    b->len += bytes;
    return bytes;
}

struct header_sink {
    char etag[AB_REPLICA_ETAG_MAX];
};

static size_t header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct header_sink *h = arg;
    size_t bytes = size * n;
    if (bytes > 5 && strncasecmp(data, "etag:", 5) == 0) {
        const char *v = data + 5;
        size_t vlen = bytes - 5;
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof(h->etag)) {
            memcpy(h->etag, v, vlen);
            h->etag[vlen] = '\0';
        }
    }
    return bytes;
}

static void common_options(CURL *c, const char *url, long timeout_ms)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "abacus/" AB_VERSION);
}

enum ab_replica_fetch_result ab_replica_fetch_manifest(CURL *c, const char *url, const char *etag,
                                                       char *body, size_t cap, size_t *len,
                                                       char new_etag[AB_REPLICA_ETAG_MAX],
                                                       char *err, size_t errlen)
{
    struct body_sink b = {body, 0, cap, 0};
    struct header_sink h = {""};
    struct curl_slist *hdrs = NULL;
    char inm[AB_REPLICA_ETAG_MAX + 32];
    common_options(c, url, 10000L);
    if (etag != NULL && etag[0] != '\0') {
        snprintf(inm, sizeof(inm), "If-None-Match: %s", etag);
        hdrs = curl_slist_append(hdrs, inm);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    *len = b.len;
    if (b.overflow) {
        snprintf(err, errlen, "manifest larger than %zu bytes", cap);
        return AB_REPLICA_FETCH_TOO_LARGE;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        return AB_REPLICA_FETCH_FAILED;
    }
    if (status == 304)
        return AB_REPLICA_FETCH_NOT_MODIFIED;
    if (status != 200) {
        snprintf(err, errlen, "HTTP status %ld", status);
        return AB_REPLICA_FETCH_FAILED;
    }
    memcpy(new_etag, h.etag, sizeof(h.etag));
    return AB_REPLICA_FETCH_OK;
}

struct file_sink {
    int fd;
    EVP_MD_CTX *md;
    int64_t len, cap;
    int overflow, write_failed;
};

static size_t file_write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct file_sink *f = arg;
    size_t bytes = size * n;
    if (f->len + (int64_t)bytes > f->cap) {
        f->overflow = 1;
        return 0;
    }
    size_t done = 0;
    while (done < bytes) {
        ssize_t w = write(f->fd, data + done, bytes - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            f->write_failed = 1;
            return 0;
        }
        done += (size_t)w;
    }
    EVP_DigestUpdate(f->md, data, bytes);
    f->len += (int64_t)bytes;
    return bytes;
}

enum ab_replica_fetch_result ab_replica_fetch_file(CURL *c, const char *url, const char *path,
                                           int64_t cap, char sha256[65], int64_t *size, char *err,
                                           size_t errlen)
{
    *size = 0;
    sha256[0] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return AB_REPLICA_FETCH_FAILED;
    }
    struct file_sink f = {fd, EVP_MD_CTX_new(), 0, cap, 0, 0};
    EVP_DigestInit_ex(f.md, EVP_sha256(), NULL);
    common_options(c, url, 600000L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, file_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(f.md, md, &mdlen);
    EVP_MD_CTX_free(f.md);
    int synced = fsync(fd) == 0;
    close(fd);
    *size = f.len;
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        sha256[2 * i] = HEX[md[i] >> 4];
        sha256[2 * i + 1] = HEX[md[i] & 15];
    }
    sha256[64] = '\0';
    if (f.overflow) {
        snprintf(err, errlen, "the file is larger than the %lld bytes announced", (long long)cap);
        return AB_REPLICA_FETCH_TOO_LARGE;
    }
    if (f.write_failed || !synced) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return AB_REPLICA_FETCH_FAILED;
    }
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        /* a transfer cut short still tells the size check what arrived */
        return cc == CURLE_PARTIAL_FILE ? AB_REPLICA_FETCH_OK : AB_REPLICA_FETCH_FAILED;
    }
    if (status != 200) {
        snprintf(err, errlen, "HTTP status %ld", status);
        return AB_REPLICA_FETCH_FAILED;
    }
    return AB_REPLICA_FETCH_OK;
}

enum ab_err ab_replica_resolve_url(const char *base, const char *ref, char *out, size_t len,
                               struct ab_errinfo *ei)
{
    CURLU *u = curl_url();
    char *full = NULL;
    enum ab_err rc = AB_OK;
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, ref, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK || strlen(full) >= len)
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "cannot resolve %.200s against %.200s",
                     ref, base);
    else
        memcpy(out, full, strlen(full) + 1);
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}
