/*
 * ClickHouse over HTTP (see abacus/clickhouse.h): URL parsing, one POST per statement through a
 * kept-alive libcurl handle, literal quoting, JSONEachRow answers and the migrations table. It
 * knows no table but schema_migrations; the events table's SQL lives with its users
 * (collect/forward.c writes it, analyze/clickhouse.c reads it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "abacus/clickhouse.h"
#include "abacus/mem.h"
#include "abacus/version.h"

struct ab_ch {
    struct ab_ch_url url;
    long timeout_ms;
    int64_t max_memory; /* max_memory_usage of every query, bytes; 0: the server's */
    CURL *curl;
};

/* ---------------------------------------------------------------- URL */

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

static int is_host_char(char c)
{
    return is_name_char(c) || c == '.' || c == '-';
}

/* Copies s[0..len) into dst (cap bytes) when it fits; -1 otherwise. */
static int copy_part(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

enum ab_err ab_ch_url_parse(const char *s, size_t len, struct ab_ch_url *out,
                            struct ab_errinfo *ei)
{
    static const char scheme[] = "clickhouse://";
    memset(out, 0, sizeof(*out));
    out->port = 8123;
    if (len < sizeof(scheme) - 1 || memcmp(s, scheme, sizeof(scheme) - 1) != 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "must start with clickhouse://");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f || s[i] == '%' || s[i] == '?' ||
            s[i] == '#')
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url",
                           "may not hold spaces, control bytes, %%, ? or #");
    const char *p = s + sizeof(scheme) - 1, *end = s + len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash != NULL ? slash : end;
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = (size_t)((colon != NULL ? colon : at) - p);
        if (ulen == 0 || copy_part(out->user, sizeof(out->user), p, ulen) != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the user name is empty or too long");
        if (colon != NULL &&
            copy_part(out->password, sizeof(out->password), colon + 1,
                      (size_t)(at - colon - 1)) != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the password is too long");
        p = at + 1;
    }
    const char *host_end;
    if (p < auth_end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (close == NULL || close == p + 1)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "an IPv6 host needs [ADDRESS]");
        for (const char *q = p + 1; q < close; q++)
            if (!(is_host_char(*q) || *q == ':'))
                return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "bad IPv6 host");
        if (copy_part(out->host, sizeof(out->host), p + 1, (size_t)(close - p - 1)) != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the host is too long");
        host_end = close + 1;
        if (host_end < auth_end && *host_end != ':')
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "bad text after the IPv6 host");
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        if (host_end == p)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the host is missing");
        for (const char *q = p; q < host_end; q++)
            if (!is_host_char(*q))
                return ab_fail(ei, AB_ERR_INVALID_FIELD, "url",
                               "the host may hold letters, digits, '.', '-' and '_' only");
        if (copy_part(out->host, sizeof(out->host), p, (size_t)(host_end - p)) != 0)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the host is too long");
    }
    if (host_end < auth_end) { /* ":PORT" */
        const char *q = host_end + 1;
        long port = 0;
        if (q == auth_end)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the port is empty");
        for (; q < auth_end; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the port must be 1..65535");
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the port must be 1..65535");
        out->port = (uint16_t)port;
    }
    if (slash == NULL || slash + 1 == end) {
        memcpy(out->db, "default", sizeof("default"));
        return AB_OK;
    }
    for (const char *q = slash + 1; q < end; q++)
        if (!is_name_char(*q))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "url",
                           "the database name may hold letters, digits and '_' only");
    if (copy_part(out->db, sizeof(out->db), slash + 1, (size_t)(end - slash - 1)) != 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "url", "the database name is too long");
    return AB_OK;
}

/* ---------------------------------------------------------------- text */

static void append_bytes(char **buf, size_t *len, const char *s, size_t n)
{
    *buf = ab_mem_realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

void ab_ch_append_quoted(char **buf, size_t *len, const char *s)
{
    append_bytes(buf, len, "'", 1);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\' || c == '\'') {
            char esc[2] = {'\\', (char)c};
            append_bytes(buf, len, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[5];
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            append_bytes(buf, len, esc, 4);
        } else {
            append_bytes(buf, len, p, 1);
        }
    }
    append_bytes(buf, len, "'", 1);
}

void ab_ch_appendf(char **buf, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *buf = ab_mem_realloc(*buf, *len + (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(*buf + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
}

enum ab_err ab_ch_rows_parse(const char *s, size_t len, json_t **rows, struct ab_errinfo *ei)
{
    *rows = json_array();
    size_t line = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(s + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (s + off)) : len - off;
        line++;
        size_t k = 0;
        while (k < n && (s[off + k] == ' ' || s[off + k] == '\t' || s[off + k] == '\r'))
            k++;
        if (k < n) {
            json_error_t jerr;
            json_t *row = json_loadb(s + off, n, JSON_REJECT_DUPLICATES, &jerr);
            if (!json_is_object(row)) {
                json_decref(row);
                json_decref(*rows);
                *rows = NULL;
                return ab_fail(ei, AB_ERR_INVALID_JSON, NULL,
                               "ClickHouse answer line %zu is not a JSON object", line);
            }
            json_array_append_new(*rows, row);
        }
        off += n + 1;
    }
    return AB_OK;
}

/* ---------------------------------------------------------------- HTTP */

struct answer {
    char *buf;
    size_t len;
    int too_large;
};

static size_t answer_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct answer *a = userp;
    size_t n = size * nmemb;
    if (a->len + n > AB_CH_ANSWER_MAX) {
        a->too_large = 1;
        return 0;
    }
    append_bytes(&a->buf, &a->len, data, n);
    return n;
}

enum ab_err ab_ch_new(const struct ab_ch_url *url, long timeout_ms, struct ab_ch **out,
                      struct ab_errinfo *ei)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) /* reference-counted */
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "curl_global_init failed");
    struct ab_ch *ch = ab_mem_calloc(1, sizeof(*ch));
    ch->url = *url;
    ch->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    ch->curl = curl_easy_init();
    if (ch->curl == NULL) {
        free(ch);
        curl_global_cleanup();
        *out = NULL;
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "curl_easy_init failed");
    }
    *out = ch;
    return AB_OK;
}

void ab_ch_free(struct ab_ch *ch)
{
    if (ch == NULL)
        return;
    curl_easy_cleanup(ch->curl);
    free(ch);
    curl_global_cleanup();
}

void ab_ch_set_max_memory(struct ab_ch *ch, int64_t bytes)
{
    ch->max_memory = bytes > 0 ? bytes : 0;
}

const char *ab_ch_db(const struct ab_ch *ch)
{
    return ch->url.db;
}

/* The request URL: http://HOST:PORT/?database=DB[&query=...][&query_id=...]. */
static char *request_url(struct ab_ch *ch, const char *db, const char *query, const char *qid)
{
    char *u = NULL;
    size_t len = 0;
    int v6 = strchr(ch->url.host, ':') != NULL;
    ab_ch_appendf(&u, &len, "http://%s%s%s:%u/?output_format_json_quote_64bit_integers=0",
                  v6 ? "[" : "", ch->url.host, v6 ? "]" : "", (unsigned)ch->url.port);
    if (db != NULL)
        ab_ch_appendf(&u, &len, "&database=%s", db);
    if (ch->max_memory > 0) /* aggregations past half of it spill to disk instead of failing */
        ab_ch_appendf(&u, &len, "&max_memory_usage=%lld&max_bytes_before_external_group_by=%lld",
                      (long long)ch->max_memory, (long long)ch->max_memory / 2);
    if (query != NULL) {
        char *esc = curl_easy_escape(ch->curl, query, 0);
        ab_ch_appendf(&u, &len, "&query=%s", esc != NULL ? esc : "");
        curl_free(esc);
    }
    if (qid != NULL) {
        char *esc = curl_easy_escape(ch->curl, qid, 0);
        ab_ch_appendf(&u, &len, "&query_id=%s", esc != NULL ? esc : "");
        curl_free(esc);
    }
    return u;
}

static enum ab_err exec_in(struct ab_ch *ch, const char *db, const char *query,
                           const char *query_id, const char *body, size_t body_len,
                           char **answer_out, struct ab_errinfo *ei)
{
    if (answer_out != NULL)
        *answer_out = NULL;
    char *url = request_url(ch, db, body != NULL ? query : NULL, query_id);
    struct answer a = {NULL, 0, 0};
    CURL *c = ch->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ch->timeout_ms < 5000 ? ch->timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ch->timeout_ms);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "abacus/" AB_VERSION);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, query);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(query));
    }
    if (ch->url.user[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_USERNAME, ch->url.user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, ch->url.password);
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: text/plain");
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, answer_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    free(url);
    enum ab_err rc = AB_OK;
    if (a.too_large) {
        rc = ab_fail(ei, AB_ERR_TOO_LARGE, NULL, "ClickHouse answer over %zu bytes",
                     AB_CH_ANSWER_MAX);
    } else if (cc != CURLE_OK) {
        rc = ab_fail(ei, AB_ERR_UNAVAILABLE, NULL, "ClickHouse at %s:%u: %s", ch->url.host,
                     (unsigned)ch->url.port, curl_easy_strerror(cc));
    } else if (status != 200) {
        /* ClickHouse's text: "Code: 60, e.displayText() = DB::Exception: ..." */
        size_t n = a.len;
        while (n > 0 && (a.buf[n - 1] == '\n' || a.buf[n - 1] == '\r'))
            n--;
        rc = ab_fail(ei, AB_ERR_STORAGE, NULL, "ClickHouse answered %ld: %.*s", status,
                     (int)(n < 200 ? n : 200), a.buf != NULL ? a.buf : "");
    }
    if (rc == AB_OK && answer_out != NULL) {
        *answer_out = a.buf != NULL ? a.buf : ab_mem_strdup("");
        a.buf = NULL;
    }
    free(a.buf);
    return rc;
}

enum ab_err ab_ch_exec(struct ab_ch *ch, const char *query, const char *query_id,
                       const char *body, size_t body_len, char **answer, struct ab_errinfo *ei)
{
    return exec_in(ch, ch->url.db, query, query_id, body, body_len, answer, ei);
}

enum ab_err ab_ch_query_rows(struct ab_ch *ch, const char *query, json_t **rows,
                             struct ab_errinfo *ei)
{
    char *text = NULL;
    *rows = NULL;
    enum ab_err rc = ab_ch_exec(ch, query, NULL, NULL, 0, &text, ei);
    if (rc == AB_OK)
        rc = ab_ch_rows_parse(text, strlen(text), rows, ei);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- migrations */

/*
 * The next statement of a migration script from *p: comments (-- to the end of the line)
 * dropped, ended by ';' outside quotes. Returns a heap copy, or NULL at the end.
 */
static char *next_statement(const char **p)
{
    char *out = NULL;
    size_t len = 0;
    char quote = 0;
    int any = 0;
    const char *s = *p;
    for (; *s != '\0'; s++) {
        if (!quote && s[0] == '-' && s[1] == '-') {
            while (*s != '\0' && *s != '\n')
                s++;
            if (*s == '\0')
                break;
            continue;
        }
        if (!quote && *s == ';') {
            s++;
            if (any)
                break;
            continue;
        }
        if (*s == '\'' || *s == '`' || *s == '"') {
            if (quote == 0)
                quote = *s;
            else if (quote == *s)
                quote = 0;
        } else if (quote != 0 && *s == '\\' && s[1] != '\0') {
            append_bytes(&out, &len, s, 2);
            s++;
            continue;
        }
        if (*s != ' ' && *s != '\n' && *s != '\t' && *s != '\r')
            any = 1;
        append_bytes(&out, &len, s, 1);
    }
    *p = s;
    if (!any) {
        free(out);
        return NULL;
    }
    return out;
}

static enum ab_err applied_versions(struct ab_ch *ch, int *max, struct ab_errinfo *ei)
{
    json_t *rows = NULL;
    *max = 0;
    enum ab_err rc = ab_ch_query_rows(
        ch, "SELECT toInt64(max(version)) AS v FROM schema_migrations FORMAT JSONEachRow",
        &rows, ei);
    if (rc == AB_OK && json_array_size(rows) == 1)
        *max = (int)json_integer_value(json_object_get(json_array_get(rows, 0), "v"));
    json_decref(rows);
    return rc;
}

enum ab_err ab_ch_migrate(struct ab_ch *ch, const struct ab_migration *set, size_t n, int *from,
                          int *to, struct ab_errinfo *ei)
{
    char *q = NULL;
    size_t qlen = 0;
    ab_ch_appendf(&q, &qlen, "CREATE DATABASE IF NOT EXISTS %s", ch->url.db);
    enum ab_err rc = exec_in(ch, NULL, q, NULL, NULL, 0, NULL, ei);
    free(q);
    if (rc != AB_OK)
        return rc;
    rc = ab_ch_exec(ch,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String,"
                    " applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version",
                    NULL, NULL, 0, NULL, ei);
    int cur = 0;
    if (rc == AB_OK)
        rc = applied_versions(ch, &cur, ei);
    if (rc != AB_OK)
        return rc;
    if (from != NULL)
        *from = cur;
    if (cur > (int)n)
        return ab_fail(ei, AB_ERR_SCHEMA_TOO_NEW, NULL,
                       "ClickHouse database %s is at schema version %d; this abacus knows %zu",
                       ch->url.db, cur, n);
    for (size_t i = (size_t)cur; i < n && rc == AB_OK; i++) {
        if (set[i].version != (int)i + 1)
            return ab_fail(ei, AB_ERR_INTERNAL, NULL, "migrations are not numbered 1..n");
        const char *p = set[i].sql;
        char *stmt;
        while (rc == AB_OK && (stmt = next_statement(&p)) != NULL) {
            rc = ab_ch_exec(ch, stmt, NULL, NULL, 0, NULL, ei);
            free(stmt);
        }
        if (rc != AB_OK) {
            char msg[sizeof(ei->message)];
            snprintf(msg, sizeof(msg), "%s", ei != NULL ? ei->message : "");
            return ab_fail(ei, rc, NULL, "%s: %s", set[i].name, msg);
        }
        q = NULL;
        qlen = 0;
        ab_ch_appendf(&q, &qlen, "INSERT INTO schema_migrations (version, name) VALUES (%d, ",
                      set[i].version);
        ab_ch_append_quoted(&q, &qlen, set[i].name);
        ab_ch_appendf(&q, &qlen, ")");
        rc = ab_ch_exec(ch, q, NULL, NULL, 0, NULL, ei);
        free(q);
        cur = set[i].version;
    }
    if (to != NULL)
        *to = cur;
    return rc;
}
