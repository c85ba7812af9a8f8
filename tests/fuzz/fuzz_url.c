/*
 * libFuzzer target: the query-string parser and percent-decoder, which see every request's URL.
 * Checks, beyond not crashing: every decoded view is valid UTF-8 without NUL, and fits the input.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/url.h"
#include "abacus/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char *scratch = malloc(ab_url_scratch_size(size));
    struct ab_url_query q;
    struct ab_errinfo ei;
    q.cap = ab_url_param_bound(s, size);
    assert(q.cap >= 1 && q.cap <= AB_URL_MAX_PARAMS + 1);
    q.params = malloc(q.cap * sizeof(*q.params));
    if (ab_url_parse_query(s, size, scratch, &q, &ei) == AB_OK) {
        assert(q.count <= AB_URL_MAX_PARAMS);
        for (size_t i = 0; i < q.count; i++) {
            assert(q.params[i].name_len > 0);
            assert(strlen(q.params[i].name) == q.params[i].name_len);
            assert(strlen(q.params[i].value) == q.params[i].value_len);
            assert(ab_utf8_valid(q.params[i].value, q.params[i].value_len));
            assert(ab_url_query_get(&q, q.params[i].name) != NULL);
        }
    }
    size_t outlen;
    if (ab_url_decode(s, size, 0, scratch, &outlen, &ei) == AB_OK) {
        assert(outlen <= size);
        assert(memchr(scratch, '\0', outlen) == NULL);
    }
    free(q.params);
    free(scratch);
    return 0;
}
