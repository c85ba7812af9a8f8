/*
 * libFuzzer target: limit-checked JSON parsing of request bodies. Checks that a document within
 * the limits round-trips through jansson, and that refusals carry a field and a message.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct ab_json_limits lim = {2048, 8};
    json_t *doc = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = ab_json_parse((const char *)data, size, &lim, &doc, &ei);
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
