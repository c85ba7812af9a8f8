/*
 * JSON parsing with limits, on top of jansson. A body is refused before jansson sees it when it is
 * over the size limit or nests deeper than the depth limit (jansson itself recurses up to 2048
 * levels); parse errors carry line, column and byte position. Duplicate object keys are refused,
 * since which one wins would be ambiguous. Used by every handler that reads a JSON body (through
 * ab_http_json_object) and by the replication manifest's parser. The assign node reads the usual
 * POST /v1/assign body with a reader of its own (assign/post.c) and leaves the rest to this.
 */
#ifndef ABACUS_JSON_H
#define ABACUS_JSON_H

#include <stddef.h>
#include <jansson.h>
#include "abacus/err.h"

struct ab_json_limits {
    size_t max_bytes; /* largest accepted document, bytes */
    int max_depth;    /* deepest accepted nesting of arrays and objects; 1 = flat object */
};

/* 1 MiB, depth 32. */
extern const struct ab_json_limits ab_json_default_limits;

/*
 * Parses buf[0..len) (need not be NUL-terminated) into *out (a new reference, the caller's);
 * limits NULL means ab_json_default_limits. The document is the one json_loadb(buf, len,
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) returns.
 * Errors: AB_ERR_TOO_LARGE (field "body") over max_bytes; AB_ERR_INVALID_JSON for nesting over
 * max_depth or a syntax error, with the position in ei->message ("line 1, column 7 (byte 6): ...").
 */
enum ab_err ab_json_parse(const char *buf, size_t len, const struct ab_json_limits *limits,
                          json_t **out, struct ab_errinfo *ei);

/*
 * Depth of the deepest array/object nesting in buf, not counting brackets inside strings; stops
 * counting and returns max_depth + 1 as soon as that is exceeded. Does not validate the JSON.
 */
int ab_json_depth(const char *buf, size_t len, int max_depth);

#endif
