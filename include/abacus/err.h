/*
 * Error codes of every fallible Abacus function, and the one mapping from a code to an HTTP status
 * and a JSON error body. Functions return enum ab_err (0 ok, negative on failure) and put human
 * text, and the field it concerns, into an optional caller-supplied struct ab_errinfo. Code never
 * branches on that text. Used by every module and every HTTP handler.
 */
#ifndef ABACUS_ERR_H
#define ABACUS_ERR_H

#include <stdarg.h>
#include <jansson.h>

enum ab_err {
    AB_OK = 0,
    AB_ERR_BAD_REQUEST = -1,       /* 400 malformed query string, path or header */
    AB_ERR_INVALID_JSON = -2,      /* 400 body is not JSON, or nests too deep */
    AB_ERR_INVALID_FIELD = -3,     /* 400 a field is missing, of the wrong type or out of range */
    AB_ERR_UNAUTHORIZED = -4,      /* 401 */
    AB_ERR_FORBIDDEN = -5,         /* 403 */
    AB_ERR_NOT_FOUND = -6,         /* 404 */
    AB_ERR_METHOD_NOT_ALLOWED = -7, /* 405 */
    AB_ERR_CONFLICT = -8,          /* 409 stale version, duplicate key */
    AB_ERR_TOO_LARGE = -9,         /* 413 body over the route's limit */
    AB_ERR_UNSUPPORTED_MEDIA = -10, /* 415 */
    AB_ERR_RATE_LIMITED = -11,     /* 429 */
    AB_ERR_HEADERS_TOO_LARGE = -12, /* 431 */
    AB_ERR_UNAVAILABLE = -13,      /* 503 not ready, overloaded, database busy */
    AB_ERR_IO = -14,               /* 500 file or socket error */
    AB_ERR_STORAGE = -15,          /* 500 SQLite error */
    AB_ERR_SCHEMA_TOO_NEW = -16,   /* 500 database written by a newer abacus */
    AB_ERR_INTERNAL = -17,         /* 500 a bug */
};

#define AB_ERR_COUNT 18 /* number of codes, AB_OK included */

/* Human text for a failure: what went wrong and which input field it concerns. */
struct ab_errinfo {
    char field[128];   /* "" when no single field is at fault; e.g. "events[3].ts" */
    char message[256]; /* one sentence, no trailing newline */
};

/* snake_case code for the JSON body ("not_found"); never NULL, "internal_error" for unknown. */
const char *ab_err_code(enum ab_err rc);

/* HTTP status for the code (200 for AB_OK). */
int ab_err_http_status(enum ab_err rc);

/*
 * Records message (printf format) and field (may be NULL) in ei when ei is not NULL, and returns rc
 * so that a failure path reads `return ab_fail(ei, AB_ERR_INVALID_FIELD, "unit", "must be ...")`.
 */
enum ab_err ab_fail(struct ab_errinfo *ei, enum ab_err rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum ab_err ab_failv(struct ab_errinfo *ei, enum ab_err rc, const char *field, const char *fmt,
                     va_list ap) __attribute__((format(printf, 4, 0)));

/* Empties ei (no field, no message). Accepts NULL. */
void ab_errinfo_clear(struct ab_errinfo *ei);

/*
 * The JSON error body {"error":{"code":"...","message":"...","field":"..."|null}}. message NULL
 * or "" uses the code's generic text; field NULL or "" gives null. Returns a new reference.
 */
json_t *ab_err_body(enum ab_err rc, const char *message, const char *field);

#endif
