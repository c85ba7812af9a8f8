/*
 * Percent-decoding and query-string parsing for request URLs. Decoded text is checked: malformed
 * percent-encoding, a decoded NUL byte and invalid UTF-8 are errors, never silently passed on.
 * The parser allocates nothing: it decodes into a caller-supplied scratch buffer and returns
 * NUL-terminated views into it. Used by the HTTP server for every request; fuzzed by fuzz_url.
 */
#ifndef ABACUS_URL_H
#define ABACUS_URL_H

#include <stddef.h>
#include "abacus/err.h"

#define AB_URL_MAX_PARAMS 64 /* more parameters than this in one query string is an error */

struct ab_url_param {
    const char *name;  /* decoded, NUL-terminated, points into the scratch buffer */
    size_t name_len;
    const char *value; /* decoded, NUL-terminated ("" for `?flag`), in the scratch buffer */
    size_t value_len;
};

struct ab_url_query {
    struct ab_url_param *params; /* caller's array, in order of appearance */
    size_t cap;                  /* its size: ab_url_param_bound() of the query string */
    size_t count;
};

/*
 * Decodes src[0..len) ("%41" -> "A"; "+" -> " " when plus_is_space) into out, which must hold len
 * bytes; *outlen gets the decoded length (out is not NUL-terminated). Returns AB_ERR_BAD_REQUEST
 * for a '%' not followed by two hex digits, a decoded NUL, or invalid UTF-8; the message says
 * which.
 */
enum ab_err ab_url_decode(const char *src, size_t len, int plus_is_space, char *out,
                          size_t *outlen, struct ab_errinfo *ei);

/*
 * How many parameters a query string of len bytes can hold, capped at AB_URL_MAX_PARAMS + 1:
 * the size to give ab_url_query.params.
 */
size_t ab_url_param_bound(const char *s, size_t len);

/* Bytes of scratch that ab_url_parse_query needs for a query string of len bytes. */
static inline size_t ab_url_scratch_size(size_t len)
{
    return len + (size_t)2 * AB_URL_MAX_PARAMS + 2;
}

/*
 * Parses an application/x-www-form-urlencoded query (without the leading '?') into q, whose
 * params and cap the caller set (cap >= ab_url_param_bound(s, len)), decoding into scratch (at
 * least ab_url_scratch_size(len) bytes, owned by the caller; q's views live as long as it). Empty pieces ("a=1&&b=2") are skipped. Errors (AB_ERR_BAD_REQUEST, field = the
 * parameter's name when it could be decoded, else "query"): bad encoding, NUL, invalid UTF-8, an
 * empty name, more than AB_URL_MAX_PARAMS parameters.
 */
enum ab_err ab_url_parse_query(const char *s, size_t len, char *scratch, struct ab_url_query *q,
                               struct ab_errinfo *ei);

/* The first value of parameter name, or NULL when absent. */
const char *ab_url_query_get(const struct ab_url_query *q, const char *name);

#endif
