/*
 * URL percent-decoding and query parsing (see abacus/url.h).
 */
#include <stdio.h>
#include <string.h>
#include "abacus/url.h"
#include "abacus/utf8.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum ab_err ab_url_decode(const char *src, size_t len, int plus_is_space, char *out,
                          size_t *outlen, struct ab_errinfo *ei)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 1 < len ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return ab_fail(ei, AB_ERR_BAD_REQUEST, NULL,
                               "malformed percent-encoding at byte %zu", i);
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return ab_fail(ei, AB_ERR_BAD_REQUEST, NULL, "NUL byte (%%00) is not allowed");
        out[o++] = c;
    }
    if (!ab_utf8_valid(out, o))
        return ab_fail(ei, AB_ERR_BAD_REQUEST, NULL, "text is not valid UTF-8");
    *outlen = o;
    return AB_OK;
}

/* Decodes one name or value into scratch at *pos, NUL-terminates it, returns its view. */
static enum ab_err decode_part(const char *s, size_t len, char *scratch, size_t *pos,
                               const char **view, size_t *view_len, struct ab_errinfo *ei)
{
    size_t n = 0;
    enum ab_err rc = ab_url_decode(s, len, 1, scratch + *pos, &n, ei);
    if (rc != AB_OK)
        return rc;
    *view = scratch + *pos;
    *view_len = n;
    scratch[*pos + n] = '\0';
    *pos += n + 1;
    return AB_OK;
}

size_t ab_url_param_bound(const char *s, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len && n <= AB_URL_MAX_PARAMS; i++)
        n += s[i] == '&';
    return n;
}

enum ab_err ab_url_parse_query(const char *s, size_t len, char *scratch, struct ab_url_query *q,
                               struct ab_errinfo *ei)
{
    size_t pos = 0;
    q->count = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && s[end] != '&')
            end++;
        if (end > i) {
            if (q->count == AB_URL_MAX_PARAMS || q->count == q->cap)
                return ab_fail(ei, AB_ERR_BAD_REQUEST, "query",
                               "more than %d query parameters", AB_URL_MAX_PARAMS);
            const char *eq = memchr(s + i, '=', end - i);
            size_t name_end = eq != NULL ? (size_t)(eq - s) : end;
            struct ab_url_param *p = &q->params[q->count];
            enum ab_err rc = decode_part(s + i, name_end - i, scratch, &pos, &p->name,
                                         &p->name_len, ei);
            if (rc != AB_OK) {
                if (ei != NULL)
                    snprintf(ei->field, sizeof(ei->field), "query");
                return rc;
            }
            if (p->name_len == 0)
                return ab_fail(ei, AB_ERR_BAD_REQUEST, "query", "a query parameter has no name");
            size_t vstart = eq != NULL ? name_end + 1 : end;
            rc = decode_part(s + vstart, end - vstart, scratch, &pos, &p->value, &p->value_len,
                             ei);
            if (rc != AB_OK) {
                if (ei != NULL)
                    snprintf(ei->field, sizeof(ei->field), "%s", p->name);
                return rc;
            }
            q->count++;
        }
        i = end + 1;
    }
    return AB_OK;
}

const char *ab_url_query_get(const struct ab_url_query *q, const char *name)
{
    for (size_t i = 0; i < q->count; i++)
        if (strcmp(q->params[i].name, name) == 0)
            return q->params[i].value;
    return NULL;
}
