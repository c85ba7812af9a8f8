/*
 * libFuzzer target: limit-checked JSON parsing of request bodies. Differential against jansson:
 * within the limits, ab_json_parse accepts exactly when json_loadb (same flags) accepts, with the
 * same document (types, values, key order, bytes; tests/json_strict.h) or the same error text.
 * Also checks that an accepted
 * document round-trips, and that refusals carry a field and a message.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/json.h"
#include "../json_strict.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(json_t *a, json_t *b)
{
    return json_equal(a, b) && json_strict_equal(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ab_json_limits lim = {2048, 8};
    const char *buf = (const char *)data;
    json_t *doc = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_json_parse(buf, size, &lim, &doc, &ei);

    int within = size <= lim.max_bytes && ab_json_depth(buf, size, lim.max_depth) <= lim.max_depth;
    json_t *ref = NULL;
    json_error_t jerr;
    if (within)
        ref = json_loadb(buf, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (within) {
        assert((rc == AB_OK) == (ref != NULL));
        if (rc == AB_OK) {
            assert(same(doc, ref));
        } else {
            char want[sizeof(ei.message)];
            snprintf(want, sizeof(want), "invalid JSON at line %d, column %d (byte %d): %s",
                     jerr.line, jerr.column, jerr.position, jerr.text);
            assert(strcmp(ei.message, want) == 0);
        }
    } else {
        assert(rc != AB_OK);
    }
    json_decref(ref);

    if (rc == AB_OK) {
        assert(doc != NULL);
        assert(size <= lim.max_bytes);
        char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        assert(text != NULL);
        json_t *again = NULL;
        struct ab_json_limits wide = {1 << 20, 64};
        assert(ab_json_parse(text, strlen(text), &wide, &again, &ei) == AB_OK);
        assert(json_equal(doc, again));
        json_decref(again);
        free(text);
        json_decref(doc);
    } else {
        assert(doc == NULL);
        assert(rc == AB_ERR_TOO_LARGE || rc == AB_ERR_INVALID_JSON);
        assert(strcmp(ei.field, "body") == 0 && ei.message[0] != '\0');
    }
    return 0;
}
