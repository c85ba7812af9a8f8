/*
 * The C SDK (include/abacus/client.h): local evaluation through the assign component's own core
 * and compiled snapshot, or remote calls to an assign node with libcurl. Shares no state between
 * clients; one client per thread.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/client.h"
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "assign_int.h"

#define RESPONSE_MAX ((size_t)64 * 1024)

struct ab_client {
    struct assign_snap *snap; /* local mode */
    CURL *curl;               /* remote mode; reused for keep-alive */
    char *base_url;
    char *control;
    long timeout_ms;
    char *body;               /* response being read, capped at RESPONSE_MAX */
    size_t body_len;
};

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

int ab_client_open(const struct ab_client_options *opts, struct ab_client **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if ((opts->snapshot_file == NULL) == (opts->base_url == NULL)) {
        set_err(err, errlen, "set exactly one of snapshot_file and base_url");
        return -1;
    }
    struct ab_client *c = ab_mem_calloc(1, sizeof(*c));
    c->control = ab_mem_strdup(opts->control != NULL ? opts->control : "control");
    if (opts->snapshot_file != NULL) {
        struct ab_snapshot *s = NULL;
        struct ab_errinfo ei;
        if (ab_snapshot_read(opts->snapshot_file, &s, &ei) != AB_OK ||
            assign_snap_compile(s, &c->snap, &ei) != AB_OK) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s: %s %s", opts->snapshot_file, ei.field, ei.message);
            set_err(err, errlen, msg);
            ab_snapshot_free(s);
            ab_client_close(c);
            return -1;
        }
        ab_snapshot_free(s);
    } else {
        c->curl = curl_easy_init();
        if (c->curl == NULL) {
            set_err(err, errlen, "cannot initialise libcurl");
            ab_client_close(c);
            return -1;
        }
        size_t n = strlen(opts->base_url);
        while (n > 0 && opts->base_url[n - 1] == '/')
            n--;
        c->base_url = ab_mem_calloc(1, n + 1);
        memcpy(c->base_url, opts->base_url, n);
        c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 200;
    }
    *out = c;
    return 0;
}

void ab_client_close(struct ab_client *c)
{
    if (c == NULL)
        return;
    assign_snap_release(c->snap);
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c->base_url);
    free(c->control);
    free(c->body);
    free(c);
}

static void set_control(struct ab_client_assignment *out, const char *variant, const char *reason)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->variant, sizeof(out->variant), "%s", variant);
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    out->hash_value = -1;
}

static int assign_local(struct ab_client *c, const char *experiment, const char *unit,
                        const char *const *attrs, struct ab_client_assignment *out)
{
    const struct assign_entry *e = assign_snap_find(c->snap, experiment);
    if (e == NULL) {
        set_control(out, c->control, "unknown_experiment");
        return -1;
    }
    json_t *a = json_object();
    for (size_t i = 0; attrs != NULL && attrs[i] != NULL && attrs[i + 1] != NULL; i += 2)
        json_object_set_new(a, attrs[i], json_string(attrs[i + 1]));
    json_object_set_new(a, "id", json_string(unit));
    struct assign_context ctx = {.attributes = a};
    struct assign_result res;
    assign_run(e->exp, &ctx, &res);
    json_decref(a);
    set_control(out, e->exp->meta[res.variation].key, assign_reason_name(res.reason));
    out->in_experiment = res.in_experiment;
    out->variation_id = res.variation;
    out->hash_value = res.hash_used ? res.bucket : -1;
    out->snapshot_version = c->snap->version;
    return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *data)
{
    struct ab_client *c = data;
    size_t n = size * nmemb;
    if (c->body_len + n > RESPONSE_MAX)
        return 0; /* an answer this large is not an assignment: abort the transfer */
    c->body = ab_mem_realloc(c->body, c->body_len + n + 1);
    memcpy(c->body + c->body_len, ptr, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return n;
}

/* Appends "&name=escaped" to url (a heap string) and returns it. */
static char *append_param(CURL *curl, char *url, const char *name, const char *value)
{
    char *v = curl_easy_escape(curl, value, 0);
    char *n = curl_easy_escape(curl, name, 0);
    size_t len = strlen(url) + strlen(n) + strlen(v) + 3;
    url = ab_mem_realloc(url, len);
    size_t at = strlen(url);
    snprintf(url + at, len - at, "%s%s=%s", strchr(url, '?') != NULL ? "&" : "?", n, v);
    curl_free(v);
    curl_free(n);
    return url;
}

static int assign_remote(struct ab_client *c, const char *experiment, const char *unit,
                         const char *const *attrs, struct ab_client_assignment *out)
{
    char *url = ab_mem_calloc(1, strlen(c->base_url) + 16);
    memcpy(url, c->base_url, strlen(c->base_url));
    memcpy(url + strlen(c->base_url), "/v1/assign", 11);
    url = append_param(c->curl, url, "experiment", experiment);
    url = append_param(c->curl, url, "unit", unit);
    for (size_t i = 0; attrs != NULL && attrs[i] != NULL && attrs[i + 1] != NULL; i += 2) {
        char name[256];
        snprintf(name, sizeof(name), "attr.%s", attrs[i]);
        url = append_param(c->curl, url, name, attrs[i + 1]);
    }
    c->body_len = 0;
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    CURLcode cc = curl_easy_perform(c->curl);
    free(url);
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    set_control(out, c->control, "error");
    if (cc != CURLE_OK || c->body == NULL)
        return 0;
    json_t *doc = json_loadb(c->body, c->body_len, 0, NULL);
    if (status == 404) {
        json_decref(doc);
        snprintf(out->reason, sizeof(out->reason), "unknown_experiment");
        return -1;
    }
    const json_t *variant = json_object_get(doc, "variant");
    if (status == 200 && json_is_string(variant)) {
        snprintf(out->variant, sizeof(out->variant), "%s", json_string_value(variant));
        snprintf(out->reason, sizeof(out->reason), "%s",
                 json_string_value(json_object_get(doc, "reason")) != NULL
                     ? json_string_value(json_object_get(doc, "reason"))
                     : "");
        out->in_experiment = json_is_true(json_object_get(doc, "in_experiment"));
        out->variation_id = (int)json_integer_value(json_object_get(doc, "variation_id"));
        const json_t *hv = json_object_get(doc, "hash_value");
        out->hash_value = json_is_number(hv) ? json_number_value(hv) : -1;
        out->snapshot_version = json_integer_value(json_object_get(doc, "snapshot_version"));
    }
    json_decref(doc);
    return 0;
}

int ab_client_assign(struct ab_client *c, const char *experiment, const char *unit,
                     const char *const *attrs, struct ab_client_assignment *out)
{
    if (experiment == NULL || unit == NULL || unit[0] == '\0') {
        set_control(out, c->control, "invalid_input");
        return -1;
    }
    return c->snap != NULL ? assign_local(c, experiment, unit, attrs, out)
                           : assign_remote(c, experiment, unit, attrs, out);
}
