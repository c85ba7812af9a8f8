/*
 * libFuzzer target: the hot-path JSON writer. Any valid UTF-8 input written as a string, and
 * any 8 bytes written as a double, must parse back through jansson to the same value.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include "abacus/jsonw.h"
#include "abacus/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_jsonw w;
    ab_jsonw_init(&w, 6 * size + 64);
    ab_jsonw_raw(&w, "[", 1);
    int is_text = ab_utf8_valid((const char *)data, size) && memchr(data, 0, size) == NULL;
    if (is_text)
        ab_jsonw_str(&w, (const char *)data, size);
    else
        ab_jsonw_raw(&w, "null", 4);
    double d = 0;
    if (size >= 8)
        memcpy(&d, data, 8);
    ab_jsonw_raw(&w, ",", 1);
    ab_jsonw_double(&w, d);
    ab_jsonw_raw(&w, "]", 1);
    assert(!w.failed);
    json_t *doc = json_loadb(w.buf, w.len, 0, NULL);
    assert(doc != NULL);
    if (is_text)
        assert(json_string_length(json_array_get(doc, 0)) == size &&
               memcmp(json_string_value(json_array_get(doc, 0)), data, size) == 0);
    if (isfinite(d))
        assert(json_real_value(json_array_get(doc, 1)) == d);
    else
        assert(json_is_null(json_array_get(doc, 1)));
    json_decref(doc);
    ab_jsonw_dispose(&w);
    return 0;
}
