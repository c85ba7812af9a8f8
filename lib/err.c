/*
 * The error table: each enum ab_err with its JSON code, HTTP status and generic message. This is
 * the only place a status code is chosen for an error; handlers go through ab_err_http_status().
 */
#include <stdio.h>
#include <string.h>
#include "abacus/err.h"

struct err_entry {
    const char *code;
    int status;
    const char *message;
};

/* indexed by -rc */
static const struct err_entry ERR_TABLE[AB_ERR_COUNT] = {
    {"ok", 200, "ok"},
    {"bad_request", 400, "the request is malformed"},
    {"invalid_json", 400, "the body is not valid JSON"},
    {"invalid_field", 400, "a field is missing or invalid"},
    {"unauthorized", 401, "authentication is required"},
    {"forbidden", 403, "this credential may not do that"},
    {"not_found", 404, "no such resource"},
    {"method_not_allowed", 405, "this method is not allowed on this path"},
    {"conflict", 409, "the resource was changed meanwhile"},
    {"payload_too_large", 413, "the request body is too large"},
    {"unsupported_media_type", 415, "unsupported content type"},
    {"rate_limited", 429, "too many requests, retry later"},
    {"headers_too_large", 431, "the request headers are too large"},
    {"unavailable", 503, "the service is not available right now, retry later"},
    {"io_error", 500, "an I/O error occurred"},
    {"storage_error", 500, "a storage error occurred"},
    {"schema_too_new", 500, "the database was written by a newer version of abacus"},
    {"internal_error", 500, "an internal error occurred"},
};

static const struct err_entry *lookup(enum ab_err rc)
{
    int i = -(int)rc;
    if (i < 0 || i >= AB_ERR_COUNT)
        return &ERR_TABLE[-AB_ERR_INTERNAL];
    return &ERR_TABLE[i];
}

const char *ab_err_code(enum ab_err rc)
{
    return lookup(rc)->code;
}

int ab_err_http_status(enum ab_err rc)
{
    return lookup(rc)->status;
}

enum ab_err ab_failv(struct ab_errinfo *ei, enum ab_err rc, const char *field, const char *fmt,
                     va_list ap)
{
    if (ei == NULL)
        return rc;
    snprintf(ei->field, sizeof(ei->field), "%s", field != NULL ? field : "");
    vsnprintf(ei->message, sizeof(ei->message), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): ap comes from va_start in every caller
    return rc;
}

enum ab_err ab_fail(struct ab_errinfo *ei, enum ab_err rc, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ab_failv(ei, rc, field, fmt, ap);
    va_end(ap);
    return rc;
}

void ab_errinfo_clear(struct ab_errinfo *ei)
{
    if (ei == NULL)
        return;
    ei->field[0] = '\0';
    ei->message[0] = '\0';
}

json_t *ab_err_body(enum ab_err rc, const char *message, const char *field)
{
    const struct err_entry *e = lookup(rc);
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(e->code));
    /* json_string() refuses invalid UTF-8: fall back to the generic text rather than drop it */
    json_t *msg = message != NULL && message[0] != '\0' ? json_string(message) : NULL;
    json_object_set_new(err, "message", msg != NULL ? msg : json_string(e->message));
    json_t *fld = field != NULL && field[0] != '\0' ? json_string(field) : NULL;
    json_object_set_new(err, "field", fld != NULL ? fld : json_null());
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    return body;
}
