/*
 * Limit-checked JSON parsing (see abacus/json.h): a pre-scan refuses documents nested deeper than
 * the limit before jansson recurses into them (it tracks only whether it is inside a string, so
 * it costs less than the parse it guards); jansson parses, validates UTF-8 and words the errors.
 */
#include <string.h>
#include "abacus/json.h"

const struct ab_json_limits ab_json_default_limits = {(size_t)1024 * 1024, 32};

int ab_json_depth(const char *buf, size_t len, int max_depth)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > max_depth)
                    return max_depth + 1;
            }
            break;
        case ']':
        case '}':
            depth--;
            break;
        default:
            break;
        }
    }
    return deepest;
}

enum ab_err ab_json_parse(const char *buf, size_t len, const struct ab_json_limits *limits,
                          json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (limits == NULL)
        limits = &ab_json_default_limits;
    if (len > limits->max_bytes)
        return ab_fail(ei, AB_ERR_TOO_LARGE, "body", "the body is %zu bytes, over the limit of %zu",
                       len, limits->max_bytes);
    if (ab_json_depth(buf, len, limits->max_depth) > limits->max_depth)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body", "JSON nests deeper than %d levels",
                       limits->max_depth);
    json_error_t jerr;
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body",
                       "invalid JSON at line %d, column %d (byte %d): %s", jerr.line, jerr.column,
                       jerr.position, jerr.text);
    *out = doc;
    return AB_OK;
}
